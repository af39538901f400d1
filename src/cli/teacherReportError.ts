/** Thrown for a checkpoint `phalanx teacher report` cannot describe; the CLI prints it and exits 2. */
export class TeacherReportError extends Error {}
