"""One live connection to the bench and the feed that keeps its values coming.

A `Link` wraps one connected asyncua session; `lost` is set when the session goes (asyncua's
connection supervisor, a subscription status change, or a failed poll). A feed delivers values
through a plain callback that only stores them: `SubscriptionFeed` (the default) or `PollFeed`
(for servers that limit subscriptions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

from asyncua import Client, ua

from edge.bench import connection
from edge.bench.nodeids import node_id
from edge.errors import SubscriptionRefused

log = logging.getLogger("reman.bench")

OnValue = Callable[[str, ua.DataValue, int], None]

# A server that answers these to CreateSubscription or CreateMonitoredItems limits subscriptions.
_SUBSCRIPTION_REFUSALS = {
    "BadTooManySubscriptions",
    "BadServiceUnsupported",
    "BadNotSupported",
    "BadNotImplemented",
    "BadTooManyMonitoredItems",
    "BadTooManyOperations",
}
_FILTER_REFUSALS = {
    "BadMonitoredItemFilterUnsupported",
    "BadFilterNotAllowed",
    "BadMonitoredItemFilterInvalid",
}
TRIGGER_QUEUE = 10  # server-side queue for edge nodes, so a short pulse is not folded away


class Feed(Protocol):
    """Something that delivers values until stopped."""

    async def stop(self) -> None: ...


class Link:
    """One connected session to the bench."""

    def __init__(self, client: Client, generation: int, namespaces: list[str]):
        self.client = client
        self.generation = generation
        self.namespaces = namespaces
        self.nodes: dict[str, ua.NodeId] = {}
        self.feed: Feed | None = None
        self.lost = asyncio.Event()
        self.loss_reason: str | None = None
        client.connection_lost_callback = self._on_connection_lost

    async def _on_connection_lost(self, exc: Exception) -> None:
        self.mark_lost(f"connection lost: {exc or type(exc).__name__}")

    def mark_lost(self, reason: str) -> None:
        """Record why the link went and wake whoever holds it."""
        if not self.lost.is_set():
            self.loss_reason = reason
            self.lost.set()

    async def read(self, ids: list[ua.NodeId]) -> list[ua.DataValue]:
        """Read the Value attribute of `ids` in one request."""
        if not ids:
            return []
        return await self.client.uaclient.read_attributes(ids, ua.AttributeIds.Value)

    async def engineering_units(self, nodes: dict[str, ua.NodeId]) -> dict[str, str]:
        """The unit (EUInformation display name) of each node that has an EngineeringUnits
        property; nodes without one are left out. Standard services only: TranslateBrowsePaths
        and Read."""
        texts = list(nodes)
        results = (
            await self.client.uaclient.translate_browsepaths_to_nodeids(
                [_property_path(nodes[t], "EngineeringUnits") for t in texts]
            )
            if texts
            else []
        )
        found = {
            t: r.Targets[0].TargetId
            for t, r in zip(texts, results, strict=True)
            if r.StatusCode.is_good() and r.Targets
        }
        values = await self.read(
            [ua.NodeId(n.Identifier, n.NamespaceIndex) for n in found.values()]
        )
        units = {}
        for text, dv in zip(found, values, strict=True):
            eu = dv.Value.Value if dv.Value is not None else None
            if isinstance(eu, ua.EUInformation) and eu.DisplayName and eu.DisplayName.Text:
                units[text] = eu.DisplayName.Text
        return units

    async def write(self, ids: list[ua.NodeId], values: list[ua.Variant]) -> list[ua.StatusCode]:
        """Write values (no timestamps, as PLCs expect) in one request; per-node status codes."""
        dvs = [ua.DataValue(v) for v in values]
        return await self.client.uaclient.write_attributes(ids, dvs, ua.AttributeIds.Value)

    async def close(self) -> None:
        """Stop the feed and close the session (never raises)."""
        if self.feed is not None:
            await self.feed.stop()
        await connection.close(self.client)


class SubscriptionFeed:
    """Monitored items on one subscription; notifications go straight to `on_value`."""

    def __init__(
        self,
        link: Link,
        nodes: dict[str, ua.NodeId],
        on_value: OnValue,
        interval_ms: float,
        queued: set[str],
    ):
        self.link = link
        self.nodes = nodes
        self.on_value = on_value
        self.interval_ms = interval_ms
        self.queued = queued
        self._texts: dict[int, str] = {}
        self._sub: Any = None

    async def start(self) -> SubscriptionFeed:
        """Create the subscription and its items; raise SubscriptionRefused when the server won't."""
        try:
            self._sub = await self.link.client.create_subscription(self.interval_ms, _Handler(self))
        except ua.UaStatusCodeError as exc:
            if _name(exc) in _SUBSCRIPTION_REFUSALS:
                raise SubscriptionRefused(_name(exc)) from exc
            raise
        results = await self._create_items(with_filter=True)
        if results and all(
            isinstance(r, ua.StatusCode) and r.name in _FILTER_REFUSALS for r in results
        ):
            results = await self._create_items(with_filter=False)
        self._check(results)
        return self

    async def _create_items(self, with_filter: bool) -> list[Any]:
        requests = []
        for handle, (text, node) in enumerate(self.nodes.items(), start=len(self._texts) + 1):
            self._texts[handle] = text
            requests.append(self._request(handle, text, node, with_filter))
        return await self._sub.create_monitored_items(requests) if requests else []

    def _request(
        self, handle: int, text: str, node: ua.NodeId, with_filter: bool
    ) -> ua.MonitoredItemCreateRequest:
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = self.interval_ms
        params.QueueSize = TRIGGER_QUEUE if text in self.queued else 1
        params.DiscardOldest = True
        if with_filter:  # a rewrite of the same value with a new source timestamp is news too
            params.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        return request

    def _check(self, results: list[Any]) -> None:
        refused = [r.name for r in results if isinstance(r, ua.StatusCode)]
        if refused and len(refused) == len(results) and refused[0] in _SUBSCRIPTION_REFUSALS:
            raise SubscriptionRefused(refused[0])
        for text, result in zip(self.nodes, results, strict=True):
            if isinstance(result, ua.StatusCode):
                log.warning("bench refused to monitor %s: %s", text, result.name)

    def deliver(self, handle: int, dv: ua.DataValue) -> None:
        """Hand one notification on (called from asyncua; never blocks)."""
        text = self._texts.get(handle)
        if text is not None:
            self.on_value(text, dv, self.link.generation)

    async def stop(self) -> None:
        """Nothing to do: closing the session deletes its subscriptions."""


class _Handler:
    """asyncua's subscription handler interface, kept thin."""

    def __init__(self, feed: SubscriptionFeed):
        self.feed = feed

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        item = data.monitored_item
        self.feed.deliver(item.ClientHandle, item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        code = status.Status
        if code is not None and not code.is_good():
            self.feed.link.mark_lost(f"subscription status {code.name}")


class PollFeed:
    """Reads every node each interval; a failed read means the link is lost."""

    def __init__(
        self, link: Link, nodes: dict[str, ua.NodeId], on_value: OnValue, interval_s: float
    ):
        self.link = link
        self.nodes = nodes
        self.on_value = on_value
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> PollFeed:
        """Start the poll task."""
        self._task = asyncio.create_task(self._loop(), name="bench-poll")
        return self

    async def _loop(self) -> None:
        texts, ids = list(self.nodes), list(self.nodes.values())
        while not self.link.lost.is_set():
            await asyncio.sleep(self.interval_s)
            try:
                values = await self.link.read(ids)
            except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
                self.link.mark_lost(f"poll read failed: {exc or type(exc).__name__}")
                return
            for text, dv in zip(texts, values, strict=True):
                self.on_value(text, dv, self.link.generation)

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _property_path(node: ua.NodeId, name: str) -> ua.BrowsePath:
    element = ua.RelativePathElement(
        ReferenceTypeId=node_id(ua.ObjectIds.HasProperty),
        IsInverse=cast(ua.Boolean, False),  # asyncua's ua.Boolean marks a bool field; takes bool
        IncludeSubtypes=cast(ua.Boolean, True),
        TargetName=ua.QualifiedName(name, 0),
    )
    return ua.BrowsePath(StartingNode=node, RelativePath=ua.RelativePath(Elements=[element]))


def _name(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    try:
        return ua.StatusCode(code).name if code is not None else type(exc).__name__
    except (TypeError, ValueError):
        return type(exc).__name__
