// Seeded PRNG (mulberry32, shared with the simulator) so property tests are reproducible.
export { seededRandom as prng } from '../../firmware-bridge/faults.js';

export function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}
