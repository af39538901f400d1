/**
 * An expected reason the coordinator cannot start (its port is taken, its state store cannot be reached): the
 * message says what and where, so the CLI prints it as one line instead of a stack trace.
 */
export class StartupError extends Error {}
