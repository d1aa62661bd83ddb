/**
 * Asking for a secret on the terminal (an encrypted key's passphrase), without echo. Questions
 * are asked one at a time and each answer is reused for the same question, so fifty hosts
 * sharing one key ask once. Only used when stdin is a terminal; the answer is never printed.
 */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

export function terminalPrompt(): (question: string) => Promise<string> {
  const answers = new Map<string, Promise<string>>();
  let queue: Promise<unknown> = Promise.resolve();
  return (question) => {
    let answer = answers.get(question);
    if (!answer) {
      answer = queue.then(() => askHidden(question));
      queue = answer.catch(() => undefined);
      answers.set(question, answer);
    }
    return answer;
  };
}

function askHidden(question: string): Promise<string> {
  let muted = false;
  const out = new Writable({
    write(chunk, _enc, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output: out, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (a) => {
      rl.close();
      process.stderr.write('\n');
      resolve(a);
    });
    muted = true;
  });
}
