#!/usr/bin/env python3
"""Golden ring placements from the real peer programs (spec §7.4, §7.5).

Run through ../generate-golden.sh, which installs the programs and passes their locations:
  gen.py OUT_DIR NODE_MODULES_DIR
It imports carbon (PyPI) in-process, runs /usr/bin/carbon-c-relay in test mode (-t -d) and node
with npm hashring (statsd_ring.js). Nothing here re-implements a ring: every placement comes from
the programs themselves. See tests/data/golden/README.md for the file formats.
"""

import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile

from carbon import hashing as carbon_hashing
from carbon.routers import ConsistentHashingRouter
from carbon.util import parseDestinations
from importlib.metadata import version

OUT = sys.argv[1]
NODE_MODULES = sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
CRELAY = os.environ.get("CARBON_C_RELAY", "/usr/bin/carbon-c-relay")
IDX = "0123456789abcdefghijklmnopqrstuvwxyz"
SIZES = [1, 2, 3, 7, 14]

# ---- keys ------------------------------------------------------------------------------------

K = ["moo.goo.org", "stats.timers.foo", "servers.main.cpu.load", "servers.main-01.mem.free",
     "statdtest.house.here", "graphitetest.cow.now.test", "a.b.c", "foo.bar.baz", "consthash.test",
     "gorets"]
T = ["A", "written", "look", "gloves", "the", "here", "lyric.", "How", "does", "a", "separated",
     "helmet", "chalk?", "The", "minister", "intervenes", "across", "beautiful", "bliss.", "thankful",
     "equilibrium", "gangs", "your", "stationary", "apple."]


def make_keys():
    """(category, bytes) pairs. Categories: K, T (spec §7.7), R random dotted names, U non-ASCII
    UTF-8, B bytes >= 0x80 that are not UTF-8 (c-relay only), C names c-relay's daemon would
    cleanse (its -t mode routes them as given). No key contains a space, ':' or a newline."""
    rnd = random.Random(20240601)
    words = ["servers", "stats", "timers", "counters", "gauges", "cpu", "mem", "disk", "net", "app",
             "web", "db", "cache", "queue", "api", "lb", "prod", "staging", "eu-west-1", "us_east",
             "load", "free", "used", "rx", "tx", "p99", "count", "mean", "upper_90", "Host-A"]
    out = [("K", k.encode()) for k in K] + [("T", t.encode()) for t in T]
    seen = set(k for _, k in out)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    while sum(1 for c, _ in out if c == "R") < 10000:
        parts = []
        for _ in range(rnd.randint(1, 7)):
            r = rnd.random()
            if r < 0.5:
                parts.append(rnd.choice(words))
            elif r < 0.7:
                parts.append("%s-%02d" % (rnd.choice(words), rnd.randint(0, 99)))
            else:
                parts.append("".join(rnd.choice(alnum) for _ in range(rnd.randint(1, 12))))
        k = ".".join(parts).encode()
        if k not in seen:
            seen.add(k)
            out.append(("R", k))
    uni = ["é", "ü", "ß", "ñ", "Ω", "я", "日本", "語", "€", "✓", "😀", "\u00a0x", "ÿ", "Ā"]
    while sum(1 for c, _ in out if c == "U") < 150:
        parts = [rnd.choice(words) for _ in range(rnd.randint(1, 3))]
        i = rnd.randrange(len(parts))
        parts[i] = parts[i] + rnd.choice(uni) + rnd.choice(["", rnd.choice(words)])
        k = ".".join(parts).encode("utf-8")
        if k not in seen:
            seen.add(k)
            out.append(("U", k))
    while sum(1 for c, _ in out if c == "B") < 60:
        k = (rnd.choice(words) + ".").encode() + bytes(rnd.randint(0x80, 0xFF) for _ in range(rnd.randint(1, 4)))
        k += ("." + rnd.choice(words)).encode()
        try:
            k.decode("utf-8")
            continue
        except UnicodeDecodeError:
            pass
        if k not in seen:
            seen.add(k)
            out.append(("B", k))
    cleanse = ["a..b.c", "a...b", ".leading.dot", "trailing.dot.", "..", "with(paren)", "star*name",
               "brace{x}", "comma,x", "quote\"x", "apos'x", "back\\slash", "pipe|x", "at@x",
               "percent%x", "slash/x", "eq=x", "hash#ok", "plus+x", "dollar$x", "amp&x", "tilde~x",
               "q?x", "excl!x", "caret^x", "bracket[x]", "lt<x>", "grave`x", "mixed..(a).b*.c."]
    for k in cleanse:
        kb = k.encode()
        if kb not in seen:
            seen.add(kb)
            out.append(("C", kb))
    return out


def escape(b):
    return "".join(chr(c) if 0x21 <= c <= 0x7E and c != 0x5C else "\\x%02x" % c for c in b)


# ---- configurations --------------------------------------------------------------------------
# Each: name, members (hashkeys in OUR config syntax, spec §7.5), replication, extra options.


def carbon_configs():
    cfgs = []
    for n in SIZES:
        ms = []
        for k in range(n):
            if n == 7 and k == 2:
                ms.append("[2001:db8::2]:2004")
            else:
                ms.append("10.0.%d.1:%d" % (k, 2003 + k))
        cfgs.append(("n%d" % n, ms, min(3, n), True))
    for diverse in (True, False):
        for n in SIZES:
            h = max(1, math.ceil(n / 2))
            ms = []
            for k in range(n):
                if n >= 3 and k == n - 1:
                    ms.append("10.0.%d.1:%d" % (k % h, 2003 + k))  # instance None
                else:
                    ms.append("10.0.%d.1:%d:%s" % (k % h, 2003 + k, chr(ord("a") + k)))
            cfgs.append(("n%di%s" % (n, "" if diverse else "-nodiverse"), ms, min(3, n), diverse))
    cfgs.append(("vectorA", ["192.168.10.200:2003:a", "192.168.10.201:2003:b", "192.168.10.202:2003:c"], 2, True))
    return cfgs


def crelay_configs(algo):
    cfgs = []
    for n in SIZES:
        ms = []
        for k in range(n):
            ms.append("10.0.0.1" if k == 0 else "10.0.%d.1:%d" % (k, 2003 + k))
        cfgs.append(("n%d" % n, ms, min(3, n)))
    for n in SIZES:
        h = max(1, math.ceil(n / 2))
        ms = []
        for k in range(n):
            host = "10.0.%d.1:%d" % (k % h, 2003 + k)
            if n >= 3 and k == n - 1:
                ms.append(host)  # no instance
            elif algo == "jump_fnv1a_ch" and n != 7:
                ms.append("%s=%d" % (host, (k * 5) % n + 1))  # numeric instances: 10 sorts after 2
            elif algo == "jump_fnv1a_ch":
                ms.append("%s=%s" % (host, chr(ord("q") - k)))  # byte order
            else:
                ms.append("%s=%s" % (host, ["a", "b", "c", "d", "e", "f", "g", "node8", "i", "j", "k", "l", "m",
                                            "n"][k]))
        cfgs.append(("n%di" % n, ms, min(3, n)))
    return cfgs


def statsd_configs():
    cfgs = [("n%d" % n, ["10.1.0.%d:%d" % (k + 1, 8125 + k) for k in range(n)], min(3, n)) for n in SIZES]
    cfgs.append(("vectorB", ["192.168.59.103:8126", "192.168.59.103:8136", "192.168.59.103:8146"], 3))
    return cfgs


# ---- drivers ---------------------------------------------------------------------------------


class Settings(dict):
    __getattr__ = dict.__getitem__


def run_carbon(keys, members, rep, diverse):
    """Per key: (position, [member index ...]) from carbon's ConsistentHashingRouter."""
    results = {}
    for r in range(1, rep + 1):
        router = ConsistentHashingRouter(
            Settings(REPLICATION_FACTOR=r, DIVERSE_REPLICAS=diverse, ROUTER_HASH_TYPE="carbon_ch"))
        dests = parseDestinations(members)
        for d in dests:
            router.addDestination(d)
        idx = {d: i for i, d in enumerate(dests)}
        for ki, (_, kb) in enumerate(keys):
            try:
                key = kb.decode("utf-8")
            except UnicodeDecodeError:
                continue
            got = [idx[d] for d in router.getDestinations(key)]
            pos = carbon_hashing.carbonHash(key, "carbon_ch")
            if r < rep:
                results.setdefault(ki, {})[r] = got
            else:
                prev = results.get(ki, {})
                for rr, g in prev.items():
                    assert g == got[:rr], ("carbon GetN not a prefix", kb, rr, g, got)
                results[ki] = (pos, got)
    return [results.get(ki) for ki in range(len(keys))]


def crelay_member(m):
    """'host[:port][=instance]' -> (ip:port as c-relay prints it)."""
    hp = m.split("=", 1)[0]
    return hp if ":" in hp else hp + ":2003"


def run_crelay(algo, keys, members, rep):
    """Per key: (hash_pos, [member index ...]); also the ring dump as [(pos, member index)]."""
    idx = {crelay_member(m): i for i, m in enumerate(members)}
    assert len(idx) == len(members)
    lines = b"".join(kb + b" 1 1700000000\n" for _, kb in keys)
    per_rep = {}
    dump = None
    for r in range(1, rep + 1):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("cluster c %s replication %d\n" % (algo, r))
            for m in members:
                f.write("    %s\n" % m)
            f.write("    ;\nmatch * send to c stop;\n")
            conf = f.name
        try:
            out = subprocess.run([CRELAY, "-t", "-d", "-f", conf], input=lines, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, check=True).stdout
        finally:
            os.unlink(conf)
        text = out.split(b"\n")
        # ring dump: "# hash ring for c follows" then rows of "pos@ip:port[=inst]" until a blank line
        ring = []
        i = text.index(b"# hash ring for c follows") + 1
        while text[i].strip():
            for pos, srv in re.findall(rb"(\d+)@(\S+)", text[i]):
                ring.append((int(pos), idx[srv.split(b"=")[0].decode()]))
            i += 1
        dump = ring
        # routing blocks: "match", "    * -> KEY", "    algo(c)", "        hash_pos(N)", dests, "    stop"
        res = []
        j = i
        while j < len(text):
            if text[j].startswith(b"    * -> "):
                key = text[j][len(b"    * -> "):]
                assert text[j + 1].strip() == ("%s(c)" % algo).encode(), text[j + 1]
                m = re.match(rb"\s+hash_pos\((\d+)\)", text[j + 2])
                assert m, text[j + 2]
                dests = []
                j += 3
                while text[j].startswith(b"        "):
                    dests.append(idx[text[j].strip().decode()])
                    j += 1
                res.append((key, int(m.group(1)), dests))
            else:
                j += 1
        assert len(res) == len(keys), (algo, members, r, len(res), len(keys))
        for (_, kb), (key, _, _) in zip(keys, res):
            assert key == kb, (key, kb)
        per_rep[r] = res
    final = []
    for ki in range(len(keys)):
        _, pos, got = per_rep[rep][ki]
        assert len(got) == rep, (algo, keys[ki], got)
        for r in range(1, rep):
            assert per_rep[r][ki][2] == got[:r], ("c-relay GetN not a prefix", algo, keys[ki], r)
        if algo == "jump_fnv1a_ch":
            # hash_pos is the bucket in the sorted member list, which the dump lists in order.
            assert [m for _, m in dump][pos] == got[0], (keys[ki], pos, got, dump)
        final.append((pos, got))
    return final, dump


def run_statsd(keys, members, rep):
    js_keys = []
    for _, kb in keys:
        try:
            js_keys.append(kb.decode("utf-8"))
        except UnicodeDecodeError:
            js_keys.append(None)  # node would decode with U+FFFD replacements; not compared
    idx = {m: i for i, m in enumerate(members)}
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    out = subprocess.run(["node", os.path.join(HERE, "statsd_ring.js"), json.dumps(members), str(rep)],
                         input=json.dumps(js_keys).encode(), stdout=subprocess.PIPE, env=env,
                         check=True).stdout.decode().split("\n")
    res = []
    for line in out[: len(keys)]:
        if line == "-":
            res.append(None)
            continue
        pos, dests = line.split("\t")
        res.append((int(pos), [idx[d] for d in dests.split(",")]))
    assert len(res) == len(keys)
    return res


# ---- output ----------------------------------------------------------------------------------


def write_table(path, header, configs, columns, positions):
    """configs: [(name, members, rep, extra)], columns: per config a list (per key) of
    [member index ...] or None; positions: per key a position or None (not recorded)."""
    with open(path, "w") as f:
        for line in header:
            f.write("# %s\n" % line)
        for name, members, rep, extra in configs:
            f.write("#config %s rep=%d%s members=%s\n" % (name, rep, extra, ",".join(members)))
        for ki in range(len(positions)):
            cells = []
            for col in columns:
                got = col[ki]
                cells.append("-" if got is None else "".join(IDX[i] for i in got))
            pos = positions[ki]
            f.write("%s\t%s\n" % ("-" if pos is None else pos, " ".join(cells)))


def main():
    keys = make_keys()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "keys.txt"), "w") as f:
        for cat, kb in keys:
            f.write("%s\t%s\n" % (cat, escape(kb)))
    crelay_version = subprocess.run([CRELAY, "-v"], stdout=subprocess.PIPE).stdout.decode().split("\n")[0]
    node_version = subprocess.run(["node", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()
    hr_version = json.load(open(os.path.join(NODE_MODULES, "hashring", "package.json")))["version"]

    # carbon_ch
    cfgs = carbon_configs()
    cols, positions = [], [None] * len(keys)
    for name, members, rep, diverse in cfgs:
        res = run_carbon(keys, members, rep, diverse)
        col = []
        for ki, r in enumerate(res):
            if r is None:
                col.append(None)
                continue
            pos, got = r
            assert positions[ki] in (None, pos)
            positions[ki] = pos
            col.append(got)
        cols.append(col)
        print("carbon_ch", name, file=sys.stderr)
    write_table(os.path.join(OUT, "carbon_ch.tsv"),
                ["carbon %s (PyPI), carbon.routers.ConsistentHashingRouter, ROUTER_HASH_TYPE=carbon_ch" % version("carbon"),
                 "position = carbon.hashing.carbonHash(key, 'carbon_ch'); B keys are not UTF-8 (carbon cannot take them)"],
                [(n, m, r, " diverse=%d" % int(d)) for n, m, r, d in cfgs], cols, positions)

    # carbon-c-relay
    for algo in ("carbon_ch", "fnv1a_ch", "jump_fnv1a_ch"):
        cfgs = crelay_configs(algo)
        cols, positions = [], [None] * len(keys)
        for name, members, rep in cfgs:
            res, dump = run_crelay(algo, keys, members, rep)
            col = []
            for ki, (pos, got) in enumerate(res):
                if algo != "jump_fnv1a_ch":
                    assert positions[ki] in (None, pos)
                    positions[ki] = pos
                col.append(got)
            cols.append(col)
            if algo != "jump_fnv1a_ch" or name.endswith("i"):
                fname = "%s.ring-%s.txt" % ("carbon_ch_c_relay" if algo == "carbon_ch" else algo, name)
                if algo == "jump_fnv1a_ch" or name in ("n14", "n14i", "n7i"):
                    with open(os.path.join(OUT, fname), "w") as f:
                        f.write("# %s -t -d ring dump of %s with members %s: position member-index\n"
                                % (crelay_version, algo, ",".join(members)))
                        for pos, m in dump:
                            f.write("%d %d\n" % (pos, m))
            print(algo, name, file=sys.stderr)
        ours = "carbon_ch_c_relay" if algo == "carbon_ch" else algo
        write_table(os.path.join(OUT, "%s.tsv" % ours),
                    ["%s, cluster type %s, -t (test mode; names are routed as given, not cleansed)" % (crelay_version, algo),
                     "position = hash_pos printed by -d" + ("" if algo != "jump_fnv1a_ch" else " (not recorded: bucket index, checked by the generator)")],
                    [(n, m, r, "") for n, m, r in cfgs], cols, positions)

    # statsd_hashring
    cfgs = statsd_configs()
    cols, positions = [], [None] * len(keys)
    for name, members, rep in cfgs:
        res = run_statsd(keys, members, rep)
        col = []
        for ki, r in enumerate(res):
            if r is None:
                col.append(None)
                continue
            pos, got = r
            assert positions[ki] in (None, pos)
            positions[ki] = pos
            col.append(got)
        cols.append(col)
        print("statsd_hashring", name, file=sys.stderr)
    write_table(os.path.join(OUT, "statsd_hashring.tsv"),
                ["npm hashring %s on node %s, built as statsd 0.9.0 proxy.js: {host:port: 100}, 'md5', {replicas: 0}" % (hr_version, node_version),
                 "position = ring.hashValue(key); GetN = ring.range(key, n, true); B keys are not UTF-8 (not compared)"],
                [(n, m, r, "") for n, m, r in cfgs], cols, positions)


if __name__ == "__main__":
    main()
