"""The crawler's image worker processes, fed straight from the event loop.

``concurrent.futures.ProcessPoolExecutor`` moves every task through two helper threads of the
crawling process (its queue manager and its queue feeder) and wakes the event loop through
``call_soon_threadsafe``; on the 2-core ingest benchmark that machinery was ~0.4 ms of the crawling
process's CPU per image, a fifth of it, in threads that compete with the reactor for the GIL.
:class:`ImageWorkers` keeps one duplex pipe per worker process instead: the loop writes a task to an
idle worker's pipe and reads the result when that pipe becomes readable (``loop.add_reader``), so
the reactor thread is the only thread involved and the only wake-up is the pipe itself. Writes
never block the loop (a large body is written as the worker reads it, through ``add_writer``), and
each worker has one more task queued in its pipe while it works, so it never waits for the loop.

Tasks beyond that queue wait in the crawling process (the pipeline bounds how many are in
flight). A task travels as one message (its length, then its pickle) in one send, so it wakes
its worker once. A worker that dies (killed, out of memory) fails only its task, with a
``RuntimeError`` the pipeline records as that URL's ``error``, and is replaced. When the crawling
process goes away, even by SIGKILL, its workers read end-of-file on their pipe and exit after the
task at hand (whose file, if any, is complete: the store writes a temp file and renames it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable

_PICKLE = pickle.HIGHEST_PROTOCOL
_HEADER = struct.Struct("!Q")  # each message: its length, then a pickle
#: tasks handed to one worker at a time: the one it runs and the next one, waiting in its pipe
DEPTH = 2
#: replacements for dead workers before the pool gives up and fails every task
MAX_RESPAWNS = 64


def start_method() -> str:
    """fork while this is the only thread (fast: the workers share the parent's imports); else
    forkserver, which never copies another thread's locks; spawn where there is no fork."""
    methods = multiprocessing.get_all_start_methods()
    if os.name != "posix":
        return "spawn"
    if threading.active_count() == 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class _Reader:
    """A worker's end of the pipe: whole messages, read with as few ``recv`` calls as the kernel
    allows (a task arrives as one send of header + pickle, so usually one)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def message(self):
        hs = _HEADER.size
        buf = self.buf
        while len(buf) < hs:
            self._fill(hs - len(buf))
        (n,) = _HEADER.unpack_from(buf)
        if len(buf) < hs + n:
            self._fill(hs + n - len(buf))
        obj = pickle.loads(memoryview(buf)[hs:hs + n])
        del buf[:hs + n]
        return obj

    def _fill(self, need: int) -> None:
        """Read at least ``need`` more bytes (and whatever else is already there)."""
        buf = self.buf
        start = len(buf)
        buf.extend(bytes(max(need, 1 << 16)))
        view, got = memoryview(buf), 0
        try:
            while got < need:
                k = self.sock.recv_into(view[start + got:])
                if not k:
                    raise EOFError
                got += k
        finally:
            view.release()
            del buf[start + got:]


def _frame(obj) -> bytes:
    """One message: its length, then its pickle, in one bytes object (one send, one wake-up)."""
    msg = pickle.dumps(obj, _PICKLE)
    return _HEADER.pack(len(msg)) + msg


def _worker_main(sock: socket.socket, fn: Callable, warm_up: Callable | None,
                 inherited: tuple[int, ...] = ()) -> None:
    """A worker's life: ``fn(*args, **kwargs)`` for each task read from ``sock``, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the crawling process's to handle
    for fd in inherited:  # a forked worker's copies of its siblings' pipes: they must see EOF alone
        try:
            os.close(fd)
        except OSError:
            pass
    if warm_up is not None:
        warm_up()
    reader = _Reader(sock)
    while True:
        try:
            args, kwargs = reader.message()
        except (EOFError, OSError):
            return
        try:
            out = (True, fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, the worker lives on
            out = (False, f"{type(exc).__name__}: {exc}")
        try:
            sock.sendall(_frame(out))
        except OSError:
            return


class _Worker:
    __slots__ = ("process", "sock", "fd", "futures", "out", "rbuf", "loop", "writing")

    def __init__(self, process, sock: socket.socket):
        self.process, self.sock, self.fd = process, sock, sock.fileno()
        self.futures: deque[asyncio.Future] = deque()  # its tasks, oldest first (answered in order)
        self.out: deque[memoryview] = deque()            # bytes not yet written to it
        self.rbuf = bytearray()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writing = False


class ImageWorkers:
    """``workers`` processes running ``fn``; :meth:`submit` from the event loop returns an asyncio
    future of ``fn(*args, **kwargs)`` (arguments and results must pickle). Create it before the
    reactor and its threads start, so the workers can be forked."""

    def __init__(self, workers: int, fn: Callable, warm_up: Callable | None = None):
        self.fn, self.warm_up = fn, warm_up
        self.size = max(1, workers)
        self.pending: deque[tuple[bytes, asyncio.Future]] = deque()
        self.workers: list[_Worker] = []
        self.respawns = 0
        self.closed = False
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> _Worker:
        method = start_method()
        ctx = multiprocessing.get_context(method)
        parent, child = socket.socketpair()
        inherited = tuple(w.fd for w in self.workers) + (parent.fileno(),) if method == "fork" else ()
        proc = ctx.Process(target=_worker_main, args=(child, self.fn, self.warm_up, inherited), daemon=True,
                           name="fid-image-worker")
        proc.start()
        child.close()
        parent.setblocking(False)
        w = _Worker(proc, parent)
        self.workers.append(w)
        return w

    # ---- event-loop side ----------------------------------------------------------------------
    def submit(self, *args, **kwargs) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.closed or not self.workers:
            fut.set_exception(RuntimeError("the image workers are shut down"))
            return fut
        msg = _frame((args, kwargs))
        w = min(self.workers, key=lambda x: len(x.futures))
        if len(w.futures) < DEPTH:
            self._send(w, msg, fut)
        else:
            self.pending.append((msg, fut))
        return fut

    def _send(self, w: _Worker, msg: bytes, fut: asyncio.Future) -> None:
        if w.loop is None:
            w.loop = asyncio.get_running_loop()
            w.loop.add_reader(w.fd, self._on_readable, w)
        w.futures.append(fut)
        w.out.append(memoryview(msg))
        if not w.writing:
            self._on_writable(w)

    def _on_writable(self, w: _Worker) -> None:
        """Write what the socket takes now; wait for it to drain (add_writer) for the rest."""
        try:
            while w.out:
                chunk = w.out[0]
                k = w.sock.send(chunk)
                if k < len(chunk):
                    w.out[0] = chunk[k:]
                    break
                w.out.popleft()
        except BlockingIOError:
            pass
        except OSError:
            self._lost(w)
            return
        if w.out and not w.writing:
            w.loop.add_writer(w.fd, self._on_writable, w)
            w.writing = True
        elif not w.out and w.writing:
            w.loop.remove_writer(w.fd)
            w.writing = False

    def _on_readable(self, w: _Worker) -> None:
        try:
            data = w.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(w)
            return
        buf = w.rbuf
        buf += data
        hs = _HEADER.size
        while len(buf) >= hs:
            (n,) = _HEADER.unpack_from(buf)
            if len(buf) < hs + n:
                break
            ok, value = pickle.loads(memoryview(buf)[hs:hs + n])
            del buf[:hs + n]
            fut = w.futures.popleft()
            if not fut.done():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(RuntimeError(value))
            self._refill(w)

    def _refill(self, w: _Worker) -> None:
        while self.pending and len(w.futures) < DEPTH:
            msg, fut = self.pending.popleft()
            if not fut.done():  # skip tasks whose caller went away
                self._send(w, msg, fut)

    def _lost(self, w: _Worker) -> None:
        """A worker died: fail its tasks, replace it (up to MAX_RESPAWNS times)."""
        self._drop(w)
        w.process.join(0.5)
        for fut in w.futures:
            if not fut.done():
                fut.set_exception(RuntimeError(f"the image worker died (exit code {w.process.exitcode})"))
        w.futures.clear()
        if self.closed:
            return
        if self.respawns < MAX_RESPAWNS:
            self.respawns += 1
            self._refill(self._spawn())
        elif not self.workers:
            while self.pending:
                _msg, fut = self.pending.popleft()
                if not fut.done():
                    fut.set_exception(RuntimeError("the image workers keep dying; giving up"))

    def _drop(self, w: _Worker) -> None:
        if w.loop is not None:
            try:
                w.loop.remove_reader(w.fd)
                if w.writing:
                    w.loop.remove_writer(w.fd)
            except (RuntimeError, ValueError, OSError):  # loop already closed
                pass
            w.writing = False
        try:
            w.sock.close()
        except OSError:
            pass
        if w in self.workers:
            self.workers.remove(w)

    # ---- shutting down ------------------------------------------------------------------------
    def shutdown(self, timeout: float = 60.0) -> None:
        """Close the pipes (each worker exits after its task at hand) and wait for the workers."""
        self.closed = True
        futures = [f for _m, f in self.pending] + [f for w in self.workers for f in w.futures]
        for fut in futures:
            try:
                fut.cancel()
            except RuntimeError:  # its loop is closed: nobody waits for it any more
                pass
        self.pending.clear()
        workers = list(self.workers)
        for w in workers:
            self._drop(w)
        for w in workers:
            w.process.join(timeout)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
