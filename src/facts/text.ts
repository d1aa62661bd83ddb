/** Line helpers shared by the section parsers. */
export const lines = (text: string): string[] => text.split('\n').map((l) => l.replace(/\r$/, ''));
export const nonEmpty = (text: string): string[] => lines(text).filter((l) => l.trim() !== '');

/** A probe section: its name and the POSIX sh snippet that prints it (exit 0, never reads stdin). */
export type ProbeSection = [name: string, sh: string];

/** A section's output by name ('' when the probe printed none). */
export type SectionText = (name: string) => string;
