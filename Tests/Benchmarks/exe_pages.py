#!/usr/bin/env python3
"""Where a running edge-gateway's executable pages go, read from outside.

    Tests/Benchmarks/exe_pages.py PID [--binary UNSTRIPPED] [--symbols] [--pageout]

Walks /proc/PID/pagemap over the mappings of the process's executable and prints the resident kB by
section (readelf of --binary, default /proc/PID/exe) and, with --symbols, by the module a page's
symbols belong to (Swift module names from the mangling, C++ namespaces, C names; a page shared by
several modules is split among them). Needs root (pagemap) and an unstripped binary for --symbols
(the package is stripped: give the build it was made from).

--pageout first asks the kernel to page those mappings out (process_madvise(MADV_PAGEOUT), Linux 5.10+)
and prints the process's PSS before and after: what memory.releaseStartupPagesSeconds does from inside
(BENCHMARKS.md "Start-up pages handed back"). Pages the process wrote are anonymous and stay.
"""
import argparse, bisect, collections, ctypes, os, re, struct, subprocess, sys

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('pid', type=int)
parser.add_argument('--binary')
parser.add_argument('--symbols', action='store_true')
parser.add_argument('--pageout', action='store_true')
args = parser.parse_args()
pid = args.pid
binary = args.binary or f'/proc/{pid}/exe'


def mappings():
    exe = os.stat(f'/proc/{pid}/exe')
    found = []
    for line in open(f'/proc/{pid}/maps'):
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split('-'))
        major, minor = (int(x, 16) for x in fields[3].split(':'))
        if int(fields[4]) == exe.st_ino and os.makedev(major, minor) == exe.st_dev:
            found.append((lo, hi, int(fields[2], 16), fields[1]))
    return found


def pss():
    for line in open(f'/proc/{pid}/smaps_rollup'):
        if line.startswith('Pss:'):
            return int(line.split()[1])


if args.pageout:
    libc = ctypes.CDLL(None, use_errno=True)

    class IOVec(ctypes.Structure):
        _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]

    before = pss()
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        sys.exit(f'pidfd_open: errno {ctypes.get_errno()}')
    for lo, hi, _, perms in mappings():
        vector = IOVec(lo, hi - lo)
        if libc.syscall(440, pidfd, ctypes.byref(vector), 1, 21, 0) < 0:  # process_madvise, MADV_PAGEOUT
            print(f'{lo:x}-{hi:x} {perms}: errno {ctypes.get_errno()}', file=sys.stderr)
    print(f'PSS {before} kB -> {pss()} kB (paged out)')

maps = mappings()
base = maps[0][0] - maps[0][2]
sections = []
for line in subprocess.run(['readelf', '-SW', binary], capture_output=True, text=True).stdout.splitlines():
    m = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)', line)
    if m and int(m.group(2), 16):
        sections.append((int(m.group(2), 16), int(m.group(4), 16), m.group(1)))
sections.sort()
present = []
with open(f'/proc/{pid}/pagemap', 'rb') as pagemap:
    for lo, hi, _, perms in maps:
        pagemap.seek(lo // 4096 * 8)
        data = pagemap.read((hi - lo) // 4096 * 8)
        for i in range(0, len(data), 8):
            if struct.unpack('<Q', data[i:i + 8])[0] >> 63:
                present.append((lo + i // 8 * 4096 - base, perms))

by_section = collections.Counter()
for address, perms in present:
    name = next((n for s, size, n in sections if s < address + 4096 and address < s + size), '?')
    by_section[(perms, name)] += 4
for (perms, name), kb in sorted(by_section.items(), key=lambda x: -x[1]):
    print(f'{perms} {name:30s} {kb:7d} kB')
print(f'resident: {sum(by_section.values())} kB of the executable')

if args.symbols:
    symbols = []
    for line in subprocess.run(['nm', '-n', '--defined-only', binary], capture_output=True, text=True).stdout.splitlines():
        fields = line.split(' ', 2)
        if len(fields) == 3:
            symbols.append((int(fields[0], 16), fields[2]))
    addresses = [a for a, _ in symbols]

    def module(name):
        m = re.match(r'_?\$s(\d+)', name)
        if m:
            return 'swift:' + name[len(m.group(0)):][:int(m.group(1))]
        if name.startswith(('$s', '_$s')):
            return 'swift:(standard library)'
        m = re.match(r'_ZN?K?L?(\d+)', name)
        if m:
            return 'c++:' + name[len(m.group(0)):][:int(m.group(1))]
        return 'c:' + name[:12]

    by_module = collections.Counter()
    for address, perms in present:
        first = max(bisect.bisect_right(addresses, address) - 1, 0)
        last = max(bisect.bisect_left(addresses, address + 4096), first + 1)
        modules = {module(symbols[k][1]) for k in range(first, min(last, len(symbols)))}
        for m in modules:
            by_module[(perms, m)] += 4 / len(modules)
    for (perms, m), kb in sorted(by_module.items(), key=lambda x: -x[1])[:60]:
        print(f'{perms} {m:40s} {kb:8.0f} kB')
