/**
 * Process figures from procfs: CPU ticks, RSS, and which process listens on a
 * loopback port. Linux only; every reader returns `null` when the figure
 * cannot be read (process gone, no procfs) rather than throwing.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

let clockTicks: number | undefined;

/** `getconf CLK_TCK`: the unit of utime/stime in /proc/<pid>/stat (100 almost everywhere). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process, in clock ticks. */
export function cpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : null;
  } catch {
    return null;
  }
}

/** CPU time of the whole host, in clock ticks summed over its CPUs: all of it, and the part stolen. */
export interface HostTicks {
  total: number;
  /** Time a virtual CPU was ready to run while the hypervisor ran something else. */
  steal: number;
}

/**
 * Parses the `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal guest
 * guest_nice. Guest time is already counted in user and nice, so the total is the first eight.
 */
export function parseHostTicks(procStat: string): HostTicks | null {
  const line = procStat.split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== 'cpu' || fields.length < 9) return null;
  const ticks = fields.slice(1, 9).map(Number);
  if (!ticks.every(Number.isFinite)) return null;
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7]! };
}

/** The host's CPU ticks now, or null without procfs. */
export function hostTicks(): HostTicks | null {
  try {
    return parseHostTicks(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/** Percent of the host's CPU time stolen between two readings, or null. */
export function stealPct(from: HostTicks | null, to: HostTicks | null): number | null {
  if (from === null || to === null || to.total <= from.total) return null;
  return ((to.steal - from.steal) / (to.total - from.total)) * 100;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** CPU use of `pid` between two calls: `stop()` returns percent of one core over the wall time. */
export function cpuMeter(pid: number | null): { stop(): number | null } {
  const t0 = performance.now();
  const c0 = pid === null ? null : cpuTicks(pid);
  return {
    stop() {
      if (pid === null || c0 === null) return null;
      const c1 = cpuTicks(pid);
      const wallS = (performance.now() - t0) / 1000;
      if (c1 === null || wallS <= 0) return null;
      return ((c1 - c0) / clockTicksPerSecond() / wallS) * 100;
    },
  };
}

/** Samples a process's RSS every `everyMs` and keeps the peak. */
export function rssPeakSampler(pid: number | null, everyMs = 200): { stop(): number | null } {
  if (pid === null) return { stop: () => null };
  let peak = rssBytes(pid) ?? 0;
  const timer = setInterval(() => {
    const now = rssBytes(pid);
    if (now !== null && now > peak) peak = now;
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const now = rssBytes(pid);
      if (now !== null && now > peak) peak = now;
      return peak === 0 ? null : peak;
    },
  };
}

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const local = cols[1];
      if (local === undefined || cols[3] !== '0A') continue; // 0A = LISTEN
      if (local.slice(local.lastIndexOf(':') + 1) === hexPort && cols[9] !== undefined) inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** The pid of the process listening on `port` (any local address), or null. Needs to read other processes' fds (root). */
export function pidListeningOn(port: number): number | null {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${entry}/fd/${fd}`);
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m !== null && inodes.has(m[1]!)) return Number(entry);
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return null;
}

/** The first process whose command name (`/proc/<pid>/comm`) is `name`, or null. */
export function pidByName(name: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) return Number(entry);
    } catch {
      // gone
    }
  }
  return null;
}

/** Broker pid for a port: the listener, else the first process named `fallbackName`. */
export function findBrokerPid(port: number, fallbackName: string): number | null {
  return pidListeningOn(port) ?? pidByName(fallbackName);
}

/** Soft limit on open files of a process, or null. */
export function openFilesLimit(pid: number): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}
