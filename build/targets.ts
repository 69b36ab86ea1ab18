// The gateway targets a package can be built for, and what each needs: the
// compiler triplet (Debian's cross g++ `<triplet>-g++`, which is also the
// native compiler's name on a host of that architecture), node-gyp's arch,
// where @serialport/bindings-cpp ships a prebuilt addon, and the emulator
// the tests run it under.

export const TARGET_NAMES = ['linux-x64', 'linux-arm64', 'linux-armv7', 'linux-mips64el', 'linux-mipsel'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export interface Target {
  name: TargetName;
  /** process.arch on the gateway. */
  nodeArch: 'x64' | 'arm64' | 'arm' | 'mips64el' | 'mipsel';
  /** node-gyp --arch. */
  gypArch: string;
  /** GNU triplet of the compiler: `${triplet}-g++`, `${triplet}-strip`. */
  triplet: string;
  /** Debian package of the cross compiler on an amd64 build host. */
  crossPackage: string;
  /** Debian architecture name (dpkg --print-architecture on the gateway). */
  debianArch: string;
  /** Folder of @serialport/bindings-cpp/prebuilds/ to ship, with the file to keep; null: compile it. */
  serialPrebuild: { dir: string; file: string } | null;
  /** qemu-user binary that runs the target's programs on another host. */
  qemu: string;
  /** `file(1)`-style check of an ELF header: e_machine and class (32/64). */
  elf: { machine: number; bits: 32 | 64 };
}

const T: Record<TargetName, Target> = {
  'linux-x64': {
    name: 'linux-x64', nodeArch: 'x64', gypArch: 'x64', triplet: 'x86_64-linux-gnu', crossPackage: 'g++-x86-64-linux-gnu', debianArch: 'amd64',
    serialPrebuild: { dir: 'linux-x64', file: '@serialport+bindings-cpp.glibc.node' }, qemu: 'qemu-x86_64-static', elf: { machine: 62, bits: 64 },
  },
  'linux-arm64': {
    name: 'linux-arm64', nodeArch: 'arm64', gypArch: 'arm64', triplet: 'aarch64-linux-gnu', crossPackage: 'g++-aarch64-linux-gnu', debianArch: 'arm64',
    serialPrebuild: { dir: 'linux-arm64', file: '@serialport+bindings-cpp.armv8.glibc.node' }, qemu: 'qemu-aarch64-static', elf: { machine: 183, bits: 64 },
  },
  'linux-armv7': {
    name: 'linux-armv7', nodeArch: 'arm', gypArch: 'arm', triplet: 'arm-linux-gnueabihf', crossPackage: 'g++-arm-linux-gnueabihf', debianArch: 'armhf',
    serialPrebuild: { dir: 'linux-arm', file: '@serialport+bindings-cpp.armv7.glibc.node' }, qemu: 'qemu-arm-static', elf: { machine: 40, bits: 32 },
  },
  'linux-mips64el': {
    name: 'linux-mips64el', nodeArch: 'mips64el', gypArch: 'mips64el', triplet: 'mips64el-linux-gnuabi64', crossPackage: 'g++-mips64el-linux-gnuabi64', debianArch: 'mips64el',
    serialPrebuild: null, qemu: 'qemu-mips64el-static', elf: { machine: 8, bits: 64 },
  },
  'linux-mipsel': {
    name: 'linux-mipsel', nodeArch: 'mipsel', gypArch: 'mipsel', triplet: 'mipsel-linux-gnu', crossPackage: 'g++-mipsel-linux-gnu', debianArch: 'mipsel',
    serialPrebuild: null, qemu: 'qemu-mipsel-static', elf: { machine: 8, bits: 32 },
  },
};

/** A bad command-line argument of the build scripts: the message says what is valid. */
export class BuildUsageError extends Error {
  override name = 'BuildUsageError';
}

export function isTargetName(s: string): s is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(s);
}

/** The target called `name`, or a BuildUsageError listing the valid ones. */
export function target(name: string | undefined): Target {
  if (name === undefined || name === '') throw new BuildUsageError(`give --target NAME (one of: ${TARGET_NAMES.join(', ')})`);
  if (!isTargetName(name)) throw new BuildUsageError(`unknown target "${name}" (valid targets: ${TARGET_NAMES.join(', ')})`);
  return T[name];
}
