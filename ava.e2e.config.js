// The end-to-end lane: boots a real Debian kernel in QEMU (software emulation) and runs the
// built-in playbook against it. One VM, tests in order, so serial and long timeouts.
export default {
  files: ['test/e2e/**/*.e2e.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  // tsx's --import loader does not reach worker threads on Node 20: child processes.
  workerThreads: false,
  // AVA's timeout is the longest stretch without a test finishing: the first one may build
  // the image (minutes) and the apply includes a reboot and an initramfs rebuild.
  timeout: '60m',
  serial: true,
  concurrency: 1,
  failFast: true,
  verbose: true,
};
