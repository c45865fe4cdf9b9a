"""A Sparkplug edge node process for kill tests: connect, publish births, run until killed.

    python -m tests.support.sparkplug_proc PORT NODE_ID STATE_FILE DB_PATH

Prints `ready <bdSeq>` once the births are out.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support.sparkplug import make_sparkplug_node


async def main(port: int, node_id: str, state_file: str, db_path: str) -> None:
    from tests.support.nodes import open_outbox

    node = make_sparkplug_node(
        Path(db_path).parent,
        port,
        node_id=node_id,
        state_file=Path(state_file),
        outbox=open_outbox(db_path),
    )
    node.publisher.start()
    await node.client.start()
    await node.client.wait_ready(30)
    print(f"ready {node.client.bdseq}", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
