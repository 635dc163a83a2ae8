"""Feeding one input object to the model: its requests sent with MaxConcurrentTransforms in
flight, the answers written in input order, and a failed request explained (which object,
which records, and the container's end when it died)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from compute.runtime.base import Runtime
from compute.serving import last_log_lines
from studio.errors import StudioloError
from transform.client import InvocationFailed, ModelClient
from transform.inputs import InputObject
from transform.plan import Plan
from transform.records import MB, Batch, RecordTooLarge, assemble, batches

WAIT_SLICE = 0.5  # seconds between checks for a stop while a request is in flight


@dataclass(frozen=True)
class Feeder:
    plan: Plan
    split_type: str
    assemble_with: str
    client: ModelClient
    pool: ThreadPoolExecutor
    check: Callable[[], None]  # raises on a stop request or a lost lease
    answered: Callable[[Batch], None]  # after each answer is written: the progress
    explain: Callable[[InputObject, Batch, InvocationFailed], str]  # a failure's reason

    def feed(self, item: InputObject, out: IO[bytes]) -> int:
        """Write the answers for `item` into `out`; returns how many requests it took."""
        window: deque[tuple[Batch, Future[bytes]]] = deque()
        requests = 0
        try:
            for batch in batches(
                item.path,
                split_type=self.split_type,
                strategy=self.plan.strategy,
                max_bytes=self.plan.max_payload_mb * MB,
            ):
                self.check()
                if len(window) >= self.plan.concurrency:
                    self._collect(item, *window.popleft(), out)
                window.append((batch, self.pool.submit(self.client.invoke, batch.payload)))
                requests += 1
            while window:
                self._collect(item, *window.popleft(), out)
        except RecordTooLarge as exc:
            raise RecordTooLarge(f"ClientError: {item.relative}: {exc.message}") from exc
        return requests

    def _collect(
        self, item: InputObject, batch: Batch, future: Future[bytes], out: IO[bytes]
    ) -> None:
        """The answer to the oldest request in flight, written in input order."""
        while True:
            try:
                answer = future.result(timeout=WAIT_SLICE)
                break
            except TimeoutError:
                self.check()
            except InvocationFailed as exc:
                self.check()  # a stop ends the container: its requests fail, the job does not
                raise InvocationFailed(self.explain(item, batch, exc)) from exc
        out.write(assemble(answer, self.assemble_with))
        self.answered(batch)


def invocation_failure(
    item: InputObject,
    batch: Batch,
    error: InvocationFailed,
    *,
    split_type: str,
    runtime: Runtime,
    container_id: str | None,
) -> str:
    """Why the job fails: where in the input, what the model said, and, when no answer
    came, how the serving container ended if it did."""
    where = item.relative
    if split_type == "Line":
        last = batch.first_record + batch.records - 1
        where += (
            f", record {batch.first_record}"
            if batch.records == 1
            else f", records {batch.first_record}-{last}"
        )
    reason = f"ClientError: transforming {where}: {error.message}"
    if container_id is not None and error.model_status is None:
        try:
            state = runtime.inspect(container_id)
        except StudioloError:
            return reason
        if not state.running:
            why = "killed: out of memory" if state.oom_killed else f"exit code {state.exit_code}"
            lines = last_log_lines(runtime, container_id, 10)
            reason += f"\nThe serving container exited ({why})" + (
                f"; last log lines:\n{lines}" if lines else ""
            )
    return reason
