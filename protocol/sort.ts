// In-place insertion sort for the few items the hot paths order per event
// (a map's keys, a hash ID's sibling strings). Array.prototype.sort
// allocates its TimSort state on every call, whatever the length: in the
// light node's allocation profile that was a fifth of all garbage.

/** Sorts `a` in place (stable) by `before`; meant for a few items (callers use Array.prototype.sort beyond ~16). */
export function sortFew<T>(a: T[], before: (x: T, y: T) => boolean): T[] {
  for (let i = 1; i < a.length; i++) {
    const x = a[i];
    let j = i - 1;
    while (j >= 0 && before(x, a[j])) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = x;
  }
  return a;
}
