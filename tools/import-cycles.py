#!/usr/bin/env python3
"""Import circles in a crate's src/: every `crate::`/`super::`/`self::` path in each file
(in `use` lines and inline), mapped to the modules they name. Prints the top-level module
graph and every cycle, at the top level and between files (edges between a module and its
own parent, which Rust's module tree makes unavoidable, are left out at file level). Exits 1
if there is a cycle, so that `.ci/run` keeps them from coming back."""
import os, re, sys, itertools
src = sys.argv[1]
mods = {}
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'): continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, src)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib', 'main'): rel = rel[:-1]
        mods['::'.join(rel)] = path
def resolve(cur, segs):
    # longest known module prefix of the path
    best = None
    for i in range(len(segs), 0, -1):
        m = '::'.join(segs[:i])
        if m in mods: best = m; break
    return best
edges = {m: set() for m in mods}
pat = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)')
usegroup = re.compile(r'\buse\s+(crate|super|self)::\{([^;]*)\};', re.S)
for m, path in mods.items():
    text = open(path).read()
    text = text.split('#[cfg(test)]\nmod tests')[0]  # unit tests may reach anywhere
    text = re.sub(r'//.*', '', text)  # comments and doc links are not imports
    cur = m.split('::') if m else []
    # `self` is this file's module and `super` its parent, whether the file is a mod.rs or
    # not: in `a/b.rs` (module a::b), `super::c` is a::c and `self::c` is a::b::c.
    def base(kw):
        if kw == 'crate': return []
        return cur if kw == 'self' else cur[:-1]
    refs = []
    for kw, rest in pat.findall(text):
        refs.append(base(kw) + rest.strip(':').split('::'))
    for kw, group in usegroup.findall(text):
        for item in re.findall(r'([A-Za-z_][A-Za-z0-9_:]*)', group):
            refs.append(base(kw) + item.split('::'))
    # `use name;` where name is a child module declared here, e.g. `use queues::Awaiting`
    for name in re.findall(r'^use ([a-z_]+)::', text, re.M):
        child = '::'.join(cur + [name])
        if child in mods: refs.append(child.split('::'))
    for r in refs:
        t = resolve(cur, r)
        if t is not None and t != m: edges[m].add(t)
def top(m): return m.split('::')[0] if m else '(lib)'
tops = {}
for a, bs in edges.items():
    for b in bs:
        ta, tb = top(a), top(b)
        if ta != tb and a != '' and b != '': tops.setdefault(ta, set()).add(tb)
def sccs(graph):
    idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
    nodes = set(graph) | {b for bs in graph.values() for b in bs}
    def visit(v):
        idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in idx: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in idx: visit(v)
    return out
print('top-level modules and what they use:')
for t in sorted(tops): print(f'  {t} -> {", ".join(sorted(tops[t]))}')
top_cycles = sccs(tops)
print('top-level cycles:', top_cycles or 'none')
def parent(m): return '::'.join(m.split('::')[:-1])
files = {a: {b for b in bs if b != parent(a) and parent(b) != a and a != '' and b != ''} for a, bs in edges.items()}
file_cycles = sccs(files)
print('file-level cycles (parent/child edges left out):', file_cycles or 'none')
sys.exit(1 if top_cycles or file_cycles else 0)
