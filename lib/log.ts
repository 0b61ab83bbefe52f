/**
 * The gateway's operator messages (warnings about configuration, outages). A user's logger can be
 * passed where options take `logger`; pino, console and winston all fit this shape.
 */
export interface Logger {
  /** Routine events worth a line (a configuration reload); optional, since some loggers have no info level. */
  info?(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

export const consoleLogger: Required<Logger> = {
  info: (message, ...details) => console.info(message, ...details),
  warn: (message, ...details) => console.warn(message, ...details),
  error: (message, ...details) => console.error(message, ...details),
};
