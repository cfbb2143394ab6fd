"""Small amaranth.sim helpers: stream put/get with random gaps (amaranth 0.5 ships none)."""
from amaranth.sim import Simulator


async def stream_put(ctx, stream, payloads, rng=None, gap=0.0):
    """Send ``payloads`` on ``stream``; with ``rng``, idle cycles with probability ``gap``."""
    for payload in payloads:
        while rng is not None and rng.random() < gap:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload, payload)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count, rng=None, stall=0.0):
    """Receive ``count`` payloads from ``stream``; with ``rng``, back-pressure with ``stall``."""
    out = []
    while len(out) < count:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(stream.ready, int(ready))
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            out.append(int(payload))
    ctx.set(stream.ready, 0)
    return out


def run(dut, testbenches, vcd=None, deadline=None):
    sim = Simulator(dut)
    sim.add_clock(1e-8, if_exists=True)   # combinational blocks have no clock
    for tb in testbenches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run_until(deadline) if deadline else sim.run()
    else:
        sim.run_until(deadline) if deadline else sim.run()
