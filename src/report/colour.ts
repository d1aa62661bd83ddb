/**
 * The one colour table of the terminal output, and when to use it. Every coloured piece of text
 * (status words, the recap, diffs, the facts summary, the live tree's headings) goes through
 * `paint`, so --no-color and NO_COLOR switch all of it off at once.
 */

export interface Style {
  color: boolean;
}

const CODES: Record<string, string> = { green: '32', yellow: '33', red: '31', cyan: '36', dim: '2', bold: '1', magenta: '35' };

/**
 * Whether to colour: not when the user said --no-color, not when NO_COLOR is set to anything
 * non-empty (https://no-color.org), not when the output is not a terminal.
 */
export function colorEnabled(flag: boolean | undefined, isTTY: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return flag !== false && isTTY && !env.NO_COLOR;
}

/** `text` in `color` (a name of the table: green, yellow, red, cyan, magenta, dim, bold) when colouring, else as is. */
export function paint(s: Style, color: keyof typeof CODES | string, text: string): string {
  return s.color && CODES[color] ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}
