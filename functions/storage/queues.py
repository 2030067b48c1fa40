"""Queue Storage: the training-requests queue (trainings and exports) and its poison queue."""

from __future__ import annotations

from dataclasses import dataclass

from azure.storage.queue import QueueClient, QueueMessage

from functions.domain.jobs import TrainingJob


@dataclass
class Delivery:
    """One received message: its job, how often it was delivered, and the receipt that lets
    this receiver extend, release or delete it (the receipt changes on each update)."""

    job: TrainingJob
    content: str
    dequeue_count: int
    _message: QueueMessage


class TrainingQueue:
    """Jobs for the trainer: sent by the function app, taken one at a time by a worker."""

    def __init__(self, queue: QueueClient, poison: QueueClient) -> None:
        self._queue = queue
        self._poison = poison

    def send(self, job: TrainingJob) -> None:
        self._queue.send_message(job.encode())

    def receive(self, visibility_seconds: int) -> Delivery | None:
        """The next visible job, hidden from other receivers for `visibility_seconds`."""
        message = self._queue.receive_message(visibility_timeout=visibility_seconds)
        if message is None:
            return None
        content = str(message.content)
        return Delivery(TrainingJob.decode(content), content, message.dequeue_count or 1, message)

    def hide(self, delivery: Delivery, seconds: int) -> None:
        """Keep the job invisible for `seconds` from now (0: visible again at once)."""
        receipt = self._queue.update_message(delivery._message, visibility_timeout=seconds)
        delivery._message.pop_receipt = receipt.pop_receipt

    def delete(self, delivery: Delivery) -> None:
        self._queue.delete_message(delivery._message)

    def to_poison(self, delivery: Delivery) -> None:
        """Copy the job to the poison queue (the caller deletes it from this one)."""
        self._poison.send_message(delivery.content)

    def peek(self, count: int = 32) -> list[TrainingJob]:
        """Up to `count` waiting jobs, without taking them."""
        messages = self._queue.peek_messages(max_messages=count)
        return [TrainingJob.decode(str(m.content)) for m in messages]
