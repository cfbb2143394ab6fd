"""cocotb 2.x drivers and monitors for valid/ready streams with flat ports.

A stream ``name`` of the DUT is three plain wires: ``<name>__payload``, ``<name>__valid`` and
``<name>__ready`` (``amaranth.lib.stream`` rules, docs/interface.md): a transfer happens on a
rising ``clk`` edge where ``valid`` and ``ready`` are both 1; once ``valid`` is up it stays up and
``payload`` stays put until that transfer.

Phases of one clock cycle, the same for every piece here (so no two pieces race; :class:`TB`
steps all of them from one task, a piece on its own runs the same loop in its own task):

* just after the rising edge: the cycle counter advances, sources and sinks drive their outputs
  for the new cycle (``valid``/``payload`` or ``ready``);
* at the falling edge everything combinational has settled: each piece samples
  ``valid & ready & !rst`` and so knows whether a transfer happens on the *next* rising edge,
  whose number it records (``CycleCounter.cycle + 1``).

Sampling at the falling edge rather than at the rising edge keeps the pieces independent of how
a simulator orders VPI callbacks against its own non-blocking updates (Icarus and Verilator
differ there).

The pieces have the shape of cocotbext-axi's stream API, so a reader who knows that one knows
these: :class:`StreamSource` (``send``, ``send_nowait``, ``count``, ``empty``, ``idle``,
``wait``, ``clear``), :class:`StreamSink` and the passive :class:`StreamMonitor` (``recv``,
``recv_nowait``, ``count``, ``empty``, ``idle``, ``wait``), with ``set_pause_generator`` where
they drive a handshake wire. :class:`TB` takes the streams to drive as a description (e.g.
:func:`stream_ports` of an emit manifest's port list), so it serves any design whose streams
follow these rules.
"""
from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, RisingEdge, Timer

__all__ = ["CycleCounter", "StreamSource", "StreamSink", "StreamMonitor", "Transfer",
           "StreamProtocolError", "random_pauses", "pattern_pauses", "never_pause",
           "stream_ports", "TB"]


class StreamProtocolError(AssertionError):
    """A stream broke the valid/ready rules (valid dropped or payload changed before transfer)."""


def never_pause():
    """Pause generator that never pauses (sources: back to back; sinks: always ready)."""
    return itertools.repeat(False)


def random_pauses(rng: random.Random, probability: float):
    """Pause generator: each cycle pauses with ``probability``."""
    while True:
        yield rng.random() < probability


def pattern_pauses(pattern):
    """Pause generator repeating ``pattern`` (an iterable of truthy = pause), e.g. ``[0, 0, 1]``."""
    return itertools.cycle(bool(p) for p in pattern)


def _read_bit(handle):
    """A 1-bit signal as 0/1; X or Z raise (a stream control bit must be defined)."""
    v = handle.value
    if not v.is_resolvable:
        raise StreamProtocolError(f"{handle._name} is {v} (not 0/1)")
    return int(v)


class _Background:
    """A piece that runs as its own cocotb task (``_run``) between start() and stop()."""
    _task = None

    def start(self):
        if self._task is None:
            self._task = cocotb.start_soon(self._run())
        return self

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None


class CycleCounter(_Background):
    """Counts rising edges of ``clk``; ``cycle`` is the number of the last one.

    Runs its own task after :meth:`start`, or is advanced by whoever owns the clock loop
    (:class:`TB` calls :meth:`tick`).
    """

    def __init__(self, clk):
        self.clk = clk
        self.cycle = 0
        self._task = None

    def tick(self):
        self.cycle += 1

    async def _run(self):
        edge = RisingEdge(self.clk)
        while True:
            await edge
            self.tick()


@dataclass(frozen=True)
class Transfer:
    """One stream beat: its payload and the number of the rising edge that moved it."""
    data: int
    cycle: int


class _StreamBase(_Background):
    """Shared parts. Each cycle the owner calls :meth:`drive` just after the rising edge and
    :meth:`sample` at the falling edge; :meth:`start` runs that loop in a task of its own
    (standalone use), :class:`TB` instead steps all its streams from one task, which is
    several times cheaper per simulated cycle than one task per stream."""

    def __init__(self, dut, name, clk, counter: CycleCounter, rst=None, pause=None):
        self.name = name
        self.clk = clk
        self.counter = counter
        self.rst = rst
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.width = len(self.payload)
        #: every beat moved so far, with the edge that moved it (the stream's history)
        self.transfers: list[Transfer] = []
        self._callbacks = []
        self._pause = pause if pause is not None else never_pause()
        self._event = None            # made by the first wait(): nothing to pay per cycle before
        self._task = None

    def set_pause_generator(self, generator=None):
        """Pause pattern (iterator of bools, True = pause one cycle); None = never pause."""
        self._pause = generator if generator is not None else never_pause()

    def clear_pause_generator(self):
        self.set_pause_generator(None)

    def add_callback(self, fn):
        """``fn(transfer)`` runs for every transfer, in order."""
        self._callbacks.append(fn)

    def drive(self, in_reset):
        """Just after a rising edge: drive this piece's outputs for the new cycle."""

    def _in_reset(self):
        return self.rst is not None and _read_bit(self.rst) == 1

    async def _run(self):
        rising, falling = RisingEdge(self.clk), FallingEdge(self.clk)
        while True:
            await rising
            self.drive(self._in_reset())
            await falling
            self.sample(self._in_reset())

    def _record(self, data):
        t = Transfer(data, self.counter.cycle + 1)
        self.transfers.append(t)
        for fn in self._callbacks:
            fn(t)
        if self._event is not None:
            self._event.set()
        return t

    async def _wait_for(self, done, timeout=None, unit="ns"):
        """Wait until ``done()``; with ``timeout``, give up silently after that much time."""
        if self._event is None:
            self._event = Event()
        event, expired = self._event, []

        async def expire():
            await Timer(timeout, unit)
            expired.append(True)
            event.set()

        timer = cocotb.start_soon(expire()) if timeout is not None else None
        try:
            while not done() and not expired:
                event.clear()
                await event.wait()
        finally:
            if timer is not None and not timer.done():
                timer.cancel()


class StreamSource(_StreamBase):
    """Drives a DUT input stream from a queue of ints.

    Between transfers it consults the pause generator once per cycle (pause = keep ``valid``
    low); once ``valid`` is up it holds it and the payload until the DUT takes the beat. While
    ``rst`` is high no transfer counts and ``valid`` is driven low (the beat is kept, unless
    :meth:`clear` drops it).
    """

    def __init__(self, dut, name, clk, counter, rst=None, pause=None):
        super().__init__(dut, name, clk, counter, rst, pause)
        self.queue: deque[int] = deque()
        self._current = None          # the beat on the wires (valid high), if any
        self._mask = (1 << self.width) - 1
        self._valid = 0
        self.valid.value = 0
        self.payload.value = 0

    async def send(self, data):
        """Queue one int or an iterable of ints (the queue has no limit, so it never waits)."""
        self.send_nowait(data)

    def send_nowait(self, data):
        """Queue one int or an iterable of ints."""
        items = [data] if isinstance(data, int) else list(data)
        for d in items:
            d = int(d)
            if d < 0 or d > self._mask:
                raise ValueError(f"{self.name}: payload {d:#x} does not fit {self.width} bits")
            self.queue.append(d)

    def count(self):
        """Beats queued and not yet on the wires."""
        return len(self.queue)

    def empty(self):
        return not self.queue

    def idle(self):
        """Nothing queued and no beat on the wires."""
        return self._current is None and not self.queue

    async def wait(self, timeout=None, unit="ns"):
        """Wait until :meth:`idle` (every queued beat went in), or ``timeout`` passed."""
        await self._wait_for(self.idle, timeout, unit)

    def clear(self):
        """Drop every queued beat and the one on the wires (used around a reset)."""
        self.queue.clear()
        self._current = None
        self._set_valid(0)
        if self._event is not None:
            self._event.set()

    def __len__(self):
        """Beats not yet transferred (queued or on the wires)."""
        return len(self.queue) + (self._current is not None)

    def _set_valid(self, v):
        if v != self._valid:
            self._valid = v
            self.valid.value = v

    def drive(self, in_reset):
        if in_reset:
            self._set_valid(0)
            return
        if self._current is None and self.queue and not next(self._pause):
            self._current = self.queue.popleft()
            self.payload.value = self._current
        self._set_valid(0 if self._current is None else 1)

    def sample(self, in_reset):
        """Will the DUT take the beat on the next rising edge?"""
        if self._current is not None and not in_reset and _read_bit(self.ready):
            data, self._current = self._current, None
            self._record(data)


class StreamMonitor(_StreamBase):
    """Watches a stream without driving it: records every transfer and checks the rules.

    Once ``valid`` is up it must stay up, with the same payload, until the transfer (outside
    reset); payload bits that are X or Z while ``valid`` fail. Received beats
    (:class:`Transfer`) queue for :meth:`recv` unless ``keep=False``; callbacks see each one.
    """

    def __init__(self, dut, name, clk, counter, rst=None, keep=True):
        super().__init__(dut, name, clk, counter, rst)
        self._pending = None          # payload seen valid without a transfer
        self.errors: list[str] = []
        self._rx: deque[Transfer] | None = deque() if keep else None

    def _ready_now(self):
        return _read_bit(self.ready)

    def clear(self):
        """Forget the beat seen valid but not taken, and every received beat not yet read."""
        self._pending = None
        if self._rx is not None:
            self._rx.clear()

    def count(self):
        """Received beats not yet read by :meth:`recv`."""
        return len(self._rx) if self._rx is not None else 0

    def empty(self):
        return not self._rx

    def idle(self):
        """No beat is waiting on the wires (valid without a transfer)."""
        return self._pending is None

    def recv_nowait(self):
        """The oldest received :class:`Transfer` not yet read; IndexError when there is none."""
        if not self._rx:
            raise IndexError(f"{self.name}: no beat received")
        return self._rx.popleft()

    async def recv(self):
        """The oldest received :class:`Transfer` not yet read, waiting for one if needed."""
        await self.wait()
        return self.recv_nowait()

    async def wait(self, timeout=None, unit="ns"):
        """Wait until a received beat is there to read, or ``timeout`` passed."""
        await self._wait_for(lambda: bool(self._rx), timeout, unit)

    def _fail(self, msg):
        self.errors.append(msg)
        raise StreamProtocolError(msg)

    def _record(self, data):
        t = super()._record(data)
        if self._rx is not None:
            self._rx.append(t)
        return t

    def sample(self, in_reset):
        if in_reset:
            self._pending = None
            return
        valid = _read_bit(self.valid)
        if self._pending is not None and not valid:
            self._fail(f"{self.name}: valid dropped before the transfer "
                       f"(before edge {self.counter.cycle + 1}, payload {self._pending:#x})")
        if not valid:
            return
        raw = self.payload.value
        if not raw.is_resolvable:
            self._fail(f"{self.name}: payload has X/Z bits while valid (before edge "
                       f"{self.counter.cycle + 1}): {raw}")
        data = raw.to_unsigned()
        if self._pending is not None and data != self._pending:
            self._fail(f"{self.name}: payload changed from {self._pending:#x} to {data:#x} "
                       f"while valid and not taken (before edge {self.counter.cycle + 1})")
        if self._ready_now():
            self._pending = None
            self._record(data)
        else:
            self._pending = data


class StreamSink(StreamMonitor):
    """Drives ``ready`` of a DUT output stream (pause generator = back-pressure) and is its
    :class:`StreamMonitor`: records every transfer and checks the valid/ready rules."""

    def __init__(self, dut, name, clk, counter, rst=None, pause=None, keep=True):
        super().__init__(dut, name, clk, counter, rst, keep)
        if pause is not None:
            self.set_pause_generator(pause)
        self._ready = 0
        self.ready.value = 0

    def _ready_now(self):
        return self._ready            # driven by us: no need to read it back

    def drive(self, in_reset):
        r = 0 if next(self._pause) else 1
        if r != self._ready:
            self._ready = r
            self.ready.value = r


def stream_ports(ports):
    """``{stream name: "input" | "output"}`` of every valid/ready stream among ``ports``.

    ``ports`` is an emit manifest's ``"ports"`` list (dicts with ``name`` and ``direction``)
    or ``(name, direction, ...)`` tuples. A stream is a ``<name>__valid`` port with
    ``<name>__ready`` and ``<name>__payload`` beside it; its direction is its valid's.
    """
    names = {}
    for p in ports:
        name, direction = (p["name"], p["direction"]) if isinstance(p, dict) else p[:2]
        names[name] = direction
    out = {}
    for name, direction in names.items():
        if name.endswith("__valid"):
            base = name[:-len("__valid")]
            if f"{base}__ready" in names and f"{base}__payload" in names:
                out[base] = direction
    return out


class TB:
    """Clock, synchronous active-high reset and one driver per stream of a DUT.

    ``streams`` maps each stream name to ``"input"`` (the DUT takes it: a
    :class:`StreamSource`) or ``"output"`` (a :class:`StreamSink`), e.g. :func:`stream_ports`
    of the manifest's ports. ``tb[name]`` is the piece of a stream; ``roles`` (``{attribute:
    stream name}``) also makes it ``tb.<attribute>``, so a testbench can say ``tb.cmd``
    whatever the port is called.
    """

    def __init__(self, dut, streams, roles=None, period_ns=10, clk="clk", rst="rst"):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.rst = getattr(dut, rst)
        self.rst.value = 1
        self.clock = Clock(self.clk, period_ns, unit="ns")
        self.clock.start()
        self.counter = CycleCounter(self.clk)
        self.sources: dict[str, StreamSource] = {}
        self.sinks: dict[str, StreamSink] = {}
        for name, direction in dict(streams).items():
            if direction == "input":
                self.sources[name] = StreamSource(dut, name, self.clk, self.counter,
                                                  rst=self.rst)
            elif direction == "output":
                self.sinks[name] = StreamSink(dut, name, self.clk, self.counter, rst=self.rst)
            else:
                raise ValueError(f"stream {name}: direction must be input or output, "
                                 f"not {direction!r}")
        self.streams = {**self.sources, **self.sinks}
        for attr, name in (roles or {}).items():
            setattr(self, attr, self.streams[name])
        self._pieces = (*self.sources.values(), *self.sinks.values())
        self._task = cocotb.start_soon(self._run())

    def __getitem__(self, name):
        return self.streams[name]

    async def _run(self):
        """The one clocked loop: count the edge, drive every stream, sample at the fall."""
        rising, falling = RisingEdge(self.clk), FallingEdge(self.clk)
        rst = self.rst
        while True:
            await rising
            self.counter.tick()
            in_reset = _read_bit(rst) == 1
            for piece in self._pieces:
                piece.drive(in_reset)
            await falling
            in_reset = _read_bit(rst) == 1
            for piece in self._pieces:
                piece.sample(in_reset)

    @property
    def cycle(self):
        return self.counter.cycle

    def set_pauses(self, sources=None, sinks=None):
        """Pause generators for every source and every sink: each argument is a factory
        (called once per stream), a generator (sinks only; shared) or None (never pause)."""
        for src in self.sources.values():
            src.set_pause_generator(sources() if sources is not None else None)
        for sink in self.sinks.values():
            sink.set_pause_generator(sinks() if callable(sinks) else sinks)

    async def cycles(self, n=1):
        edge = RisingEdge(self.clk)
        for _ in range(n):
            await edge

    async def reset(self, cycles=2, clear=True):
        """Hold ``rst`` high for ``cycles`` rising edges (synchronous); by default drop every
        queued and in-flight beat of the sources and the sinks' pending beats.

        ``rst`` changes just after a rising edge, like every other input, so the pieces see it
        settled when they sample at the falling edge: nothing counts as a transfer on the
        ``cycles`` edges the DUT spends in reset.
        """
        edge = RisingEdge(self.clk)
        await edge
        self.rst.value = 1
        if clear:
            for piece in self._pieces:
                piece.clear()
        for _ in range(cycles):
            await edge
        self.rst.value = 0

    def sources_idle(self):
        return all(src.idle() for src in self.sources.values())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.clock.stop()
