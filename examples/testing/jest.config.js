// The example suite runs as a user's own would: plain JavaScript, jest's defaults, nothing transformed.
module.exports = {
  testEnvironment: 'node',
  transform: {},
  testTimeout: 20000,
};
