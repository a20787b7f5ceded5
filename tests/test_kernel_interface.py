"""The kernel signatures and the host's argument chains both follow cnn2gate.codegen.interface.

A project using every kernel is rendered; device/cnn2gate.cl's signatures and the
`.mem()/.num()` chains of run_layer in host/main.cpp are parsed and compared with
KERNEL_ARGS (count, order, mem/num, names, types, host expressions). The constants the
templates print come from interface.constants() only.
"""
from __future__ import annotations

import re

import pytest

from cnn2gate.codegen.interface import KERNEL_ARGS, KERNELS, constants, kernel_args
from cnn2gate.codegen.plan import ALL_KERNELS, make_plan
from cnn2gate.hw import HwConfig
from cnn2gate.codegen.project import render_context
from cnn2gate.codegen.render import render_all
from cnn2gate.hw.arch import ADD_MAX_INPUTS, CHANNEL_DEPTH
from cnn2gate.ir import GRAPH_INPUT
from cnn2gate.quant import quantize, quantize_params, with_weight_bits
from cnn2gate.ops.lrn import LRN_TABLE_SIZE, lrn_index
from cnn2gate.quant.fixedpoint import MUL_FRAC
from cnn2gate.zoo import Builder

CFG = {"vec_size": 4, "lane_num": 3, "conv_gp_size_x": 2}


def every_kernel_graph():
    """conv, dense, depthwise, pool, LRN, a 3-input add, a standalone activation, a product, a concat and a resize:
    all ten kernels."""
    b = Builder("iface", (3, 8, 8), seed=4)
    x = b.conv(GRAPH_INPUT, 6, 3)
    x = b.lrn(x, size=3)
    p = b.pool(x, "max", 2)
    d = b.conv(p, 6, 3, groups=6, act="relu6")
    z = b.conv(p, 6, 1, act="none")
    a = b.add(d, z, p, act="relu")
    c = b.concat(a, b.act(z, act="leaky"), b.mul(d, z))
    up = b.conv_transpose(b.resize(c), 6, 2, 2)  # zero insertion
    b.dense(b.shuffle(up, 3), 5)  # a channel shuffle too
    return b.build()


@pytest.fixture(scope="module")
def context():
    g = every_kernel_graph()
    plan = make_plan(quantize_params(g, quantize(g)), HwConfig(**CFG))
    assert plan.kernels == list(KERNELS)
    return render_context(plan, "a10")


def render(ctx, **consts) -> dict[str, str]:
    ctx = {**ctx, "consts": {**ctx["consts"], **consts}}
    return {k: v.decode("ascii") for k, v in render_all(ctx).items()}


# ---- parsing the generated sources ---------------------------------------------------


def _calls(chain: str) -> list[tuple[str, str]]:
    """`.f(a).g(b(c))` -> [("f", "a"), ("g", "b(c)")], parentheses balanced."""
    out, i = [], 0
    while i < len(chain):
        m = re.compile(r"\s*\.(\w+)\(").match(chain, i)
        assert m, f"not a call chain: {chain[i:]!r}"
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(chain[j], 0)
            j += 1
        out.append((m.group(1), " ".join(chain[m.end():j - 1].split())))
        i = j
    return out


def device_signatures(cl: str) -> dict[str, list[tuple[str, str]]]:
    """kernel -> [(name, type)] from each `__kernel ... void name(params)`."""
    sigs = {}
    for name, params in re.findall(r"__kernel\b[^\n]*\nvoid (\w+)\((.*?)\)\s*\{", cl, re.S):
        args = []
        for p in params.split(","):
            m = re.fullmatch(r"(.*?)(\w+)", " ".join(p.split()))
            args.append((m.group(2), m.group(1).strip()))
        sigs[name] = args
    return sigs


_STATEMENT = re.compile(r"^[ \t]*(?:for \(int i = 0; i < (\d+); i\+\+\)\s*)?rt\.(\w+)((?:\s*\.\w+\(.*?)+);$",
                        re.M | re.S)


def host_chains(cpp: str) -> dict[str, list[tuple[str, str]]]:
    """kernel -> [(mem|num, expression)] set in run_layer, loops over `i` unrolled."""
    body = re.search(r"\nstd::vector<cl_event> run_layer\(.*?\n\}\n", cpp, re.S).group(0)
    chains: dict[str, list[tuple[str, str]]] = {}
    for bound, kernel, chain in _STATEMENT.findall(body):
        calls = _calls(chain)
        assert all(f in ("mem", "num") for f, _ in calls), calls
        for i in range(int(bound)) if bound else [None]:
            chains.setdefault(kernel, []).extend(
                (f, e if i is None else re.sub(r"\bi\b", str(i), e)) for f, e in calls)
    return chains


def mismatches(files: dict[str, str], table) -> list[str]:
    """Every disagreement of the rendered device and host sources with the table."""
    sigs = device_signatures(files["device/cnn2gate.cl"])
    chains = host_chains(files["host/main.cpp"])
    bad = []
    for kernel, args in table.items():
        want_sig = [(a.name, a.cl_type) for a in args]
        want_host = [(a.kind, a.host) for a in args]
        got_sig, got_host = sigs.get(kernel), chains.get(kernel)
        if got_sig != want_sig:
            bad.append(f"{kernel} signature: {got_sig} != {want_sig}")
        if got_sig and [("mem" if "*" in t else "num") for _, t in got_sig] != [a.kind for a in args]:
            bad.append(f"{kernel} signature kinds differ from the table")
        if got_host != want_host:
            bad.append(f"{kernel} host arguments: {got_host} != {want_host}")
    for extra in (set(sigs) | set(chains)) - set(table):
        bad.append(f"{extra}: not in the table")
    return bad


# ---- the checks ----------------------------------------------------------------------


def test_table_covers_every_kernel_once():
    assert KERNELS == tuple(ALL_KERNELS)
    for kernel, args in KERNEL_ARGS.items():
        names = [a.name for a in args]
        assert len(set(names)) == len(names), kernel
        assert all(a.cl_type == "int" or a.cl_type.startswith("__global ") for a in args), kernel


def test_signatures_and_host_chains_follow_the_table(context):
    files = render(context)
    assert mismatches(files, KERNEL_ARGS) == []
    cpp = files["host/main.cpp"]
    assert f"Task {', '.join(KERNELS)};" in cpp
    assert all(f'create(rt.dev, "{k}")' in cpp for k in KERNELS)


@pytest.mark.parametrize("kernel", sorted(KERNEL_ARGS))
def test_a_swapped_or_dropped_argument_is_caught(context, kernel):
    files = render(context)
    a, b = KERNEL_ARGS[kernel][-2:]  # two ints: requant's alpha_q/six_q, mem_read's pads, ...
    # host: exchange the last two arguments of this kernel's final chain
    cpp = files["host/main.cpp"]
    head = cpp.rindex(f"rt.{kernel}.", 0, cpp.index(f"rt.{kernel}.launch()"))
    end = cpp.index(";", head)
    chain = cpp[head:end].replace(f".num({a.host}).num({b.host})", f".num({b.host}).num({a.host})")
    assert chain != cpp[head:end]
    assert mismatches({**files, "host/main.cpp": cpp[:head] + chain + cpp[end:]}, KERNEL_ARGS)
    # device: exchange the last two parameters of its signature, or drop the last one
    cl = files["device/cnn2gate.cl"]
    sig = cl.index(f"void {kernel}(")
    close = cl.index(")\n{", sig)
    for old, new in ((f"int {a.name}, int {b.name}", f"int {b.name}, int {a.name}"), (f", int {b.name}", "")):
        params = cl[sig:close].replace(old, new)
        assert params != cl[sig:close]
        assert mismatches({**files, "device/cnn2gate.cl": cl[:sig] + params + cl[close:]}, KERNEL_ARGS)


def test_add_width_comes_from_the_constant(context):
    files = render(context, add_max_inputs=3)
    assert mismatches(files, kernel_args(3)) == []
    assert mismatches(files, KERNEL_ARGS)  # the 4-slot table no longer fits
    h, cl = files["host/layers.h"], files["device/cnn2gate.cl"]
    assert "View in[3];" in h and "int lsh[3];" in h and "L.lsh[3]" not in h
    assert "#define ADD_MAX_INPUTS 3" in cl and "in3" not in cl and "if (n_inputs > 2)" in cl


def test_packed_weights_follow_the_packed_table():
    """Weights at several widths: mem_read and dw_conv take packed words and the layer's
    width; the kernels of a design at one width keep their data_t weights."""
    g = every_kernel_graph()
    fm = quantize(g)
    weighted = [layer.name for layer in g.layers if layer.has_weights]
    fm = with_weight_bits(g, fm, {n: (2, 4, 6, 3, 5)[i % 5] for i, n in enumerate(weighted)})
    plan = make_plan(quantize_params(g, fm), HwConfig(**CFG))
    assert plan.packed_weights
    files = render(render_context(plan, "a10"))
    packed = kernel_args(packed_weights=True)
    assert mismatches(files, packed) == []
    assert mismatches(files, KERNEL_ARGS)  # the data_t table no longer fits
    changed = {k for k in KERNEL_ARGS if KERNEL_ARGS[k] != packed[k]}
    assert changed == {"mem_read", "dw_conv"}
    for k in changed:
        assert packed[k][-1].name == "w_bits" and dict((a.name, a.cl_type) for a in packed[k])["weights"] == \
            "__global const uint *restrict"
    assert "int unpack_weight(" in files["device/cnn2gate.cl"]
    assert "unpack_weight" not in render(render_context(make_plan(quantize_params(g, quantize(g)),
                                                                   HwConfig(**CFG)), "a10"))["device/cnn2gate.cl"]


def test_constants_have_one_owner_and_reach_the_sources(context):
    consts = constants()
    assert (consts["add_max_inputs"], consts["channel_depth"], consts["mul_frac"]) == \
        (ADD_MAX_INPUTS, CHANNEL_DEPTH, MUL_FRAC)
    cl = render(context)["device/cnn2gate.cl"]
    for line in (f"#define ADD_MAX_INPUTS {ADD_MAX_INPUTS}", f"#define CHANNEL_DEPTH {CHANNEL_DEPTH}",
                 f"#define MUL_FRAC {MUL_FRAC}"):
        assert line in cl
    lut = [L for L in context["layers"] if L["kind_name"] == "lrn"]
    assert lut and all(L["table_bytes"] == 4 * LRN_TABLE_SIZE for L in lut)
    # other values change every printed number: no template keeps its own copy
    alt = render(context, channel_depth=7, mul_frac=13, lrn_exact=16, lrn_mant_bits=4, lrn_mant_mask=15,
                 lrn_exp_bias=3)["device/cnn2gate.cl"]
    assert "#define CHANNEL_DEPTH 7" in alt and "#define MUL_FRAC 13" in alt and "2^13/n" in alt
    assert "if (ss < 16)" in alt and "idx = 16 * (e - 3) + (int)((ss >> (e - 4)) & 15);" in alt


def test_device_lrn_index_rule_matches_fixedpoint():
    """The LRN index expression as the template prints it, evaluated in Python."""
    c = constants()

    def device(ss):
        if ss < c["lrn_exact"]:
            return ss
        e = ss.bit_length() - 1  # 63 - clz(ss)
        return c["lrn_exact"] * (e - c["lrn_exp_bias"]) + ((ss >> (e - c["lrn_mant_bits"])) & c["lrn_mant_mask"])

    samples = list(range(200)) + [(1 << k) + d for k in range(6, 48) for d in (-1, 0, 1)] + [(1 << 48) - 1]
    assert [device(s) for s in samples] == [lrn_index(s) for s in samples]
    assert device((1 << 48) - 1) == LRN_TABLE_SIZE - 1
