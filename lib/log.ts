/**
 * The gateway's operator messages (warnings about configuration, outages). A user's logger can be
 * passed where options take `logger`; pino, console and winston all fit this shape.
 */
export interface Logger {
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

export const consoleLogger: Logger = {
  warn: (message, ...details) => console.warn(message, ...details),
  error: (message, ...details) => console.error(message, ...details),
};
