"""A Modbus TCP server written with pymodbus (not by us) that serves the
quadtank register map of models/quadtank.twin, for interoperability tests.

    python3 pymodbus_quadtank.py --port PORT --mode normal|flaky|exception --seconds N

normal     serves levels (input registers 0..3, 0.01 cm) and pump voltages
           (holding registers 0..1, 1 mV) that move slowly, and a pump coil.
flaky      the same, but the server shuts down (dropping every connection)
           for 1 s out of every 3 s.
exception  the input register block holds only two registers, so reading
           the four levels draws exception 0x02 (illegal data address).

Prints "ready" on standard output once listening; stops by itself after
--seconds.
"""

import argparse
import asyncio
import math

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import ModbusTcpServer


def make_context(mode):
    n_inputs = 2 if mode == "exception" else 4
    # pymodbus blocks are 1-based internally: address 0 on the wire is index 1.
    store = ModbusSlaveContext(
        co=ModbusSequentialDataBlock(1, [1]),
        di=ModbusSequentialDataBlock(1, [0]),
        ir=ModbusSequentialDataBlock(1, [1226, 1278, 163, 141][:n_inputs]),
        hr=ModbusSequentialDataBlock(1, [3000, 3000]),
    )
    return ModbusServerContext(slaves={1: store}, single=False)


async def animate(context, stop_at):
    """Moves the levels slowly, as a live plant's would."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    levels = [12.26, 12.78, 1.63, 1.41]
    while loop.time() < stop_at:
        t = loop.time() - t0
        values = [int(round((h + 0.05 * math.sin(t + i)) * 100)) for i, h in enumerate(levels)]
        context[1].setValues(4, 0, values)
        await asyncio.sleep(0.05)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["normal", "flaky", "exception"], default="normal")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + args.seconds
    context = make_context(args.mode)
    animator = None if args.mode == "exception" else asyncio.create_task(animate(context, stop_at))
    announced = False
    while loop.time() < stop_at:
        server = ModbusTcpServer(context, address=("127.0.0.1", args.port))
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.3)
        if not announced:
            print("ready", flush=True)
            announced = True
        up = 2.0 if args.mode == "flaky" else stop_at - loop.time()
        await asyncio.sleep(max(0.0, min(up, stop_at - loop.time())))
        await server.shutdown()
        task.cancel()
        if args.mode == "flaky" and loop.time() < stop_at:
            await asyncio.sleep(1.0)
        elif args.mode != "flaky":
            break
    if animator:
        animator.cancel()


if __name__ == "__main__":
    asyncio.run(main())
