/** Line helpers shared by the section parsers. */
export const lines = (text: string): string[] => text.split('\n').map((l) => l.replace(/\r$/, ''));
export const nonEmpty = (text: string): string[] => lines(text).filter((l) => l.trim() !== '');

/** A probe section: its name and the POSIX sh snippet that prints it (exit 0, never reads stdin). */
export type ProbeSection = [name: string, sh: string];

/** A section's output by name ('' when the probe printed none). */
export type SectionText = (name: string) => string;

/**
 * `cat FILE` with shell builtins (no process), byte for byte (a last line without its newline
 * stays so; a file holding a NUL byte is no text the probe reads this way). For the small files the
 * probe prints whole: a process start costs more than reading them a byte at a time, as sh does.
 * FILE is inserted as is (a literal path or a quoted "$variable").
 */
export const catSh = (file: string): string =>
  `{ while IFS= read -r __l; do printf '%s\\n' "$__l"; done; printf '%s' "$__l"; } < ${file}`;

/** `ls -1 DIR` with a glob (no process): the names in it, without the dot files, in sh's order (the probe runs with LC_ALL=C, as ls then sorts). */
export const lsSh = (dir: string): string => `for __d in ${dir}/*; do { [ -e "$__d" ] || [ -L "$__d" ]; } && printf '%s\\n' "\${__d##*/}"; done`;
