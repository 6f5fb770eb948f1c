"""labgrid's client session to a coordinator, run on an event loop of its own thread: the coordinator's
gRPC API is asyncio, the board workers are threads, and each of them may ask (acquire, poll, release).

Only what a benchmark run needs: the places and their tags, reservations (the coordinator's scheduler gives
each one place matching the tags, never one place to two reservations), acquire and release, and the
resources a place matched (its NetworkService, a power port)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass

from harness.core.errors import ConfigError

CONNECT_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 30.0
INSTALL = "pip install 'edgebench[farm]'"


@dataclass(frozen=True)
class PlaceState:
    name: str
    tags: dict
    acquired: str | None      # "host/user" of whoever holds it
    reservation: str | None   # the token of the reservation it is allocated to


@dataclass(frozen=True)
class ReservationState:
    token: str
    state: str                # waiting, allocated, acquired, expired, invalid
    place: str | None         # the place allocated to it


class QuietLabgridLogs(logging.Filter):
    """labgrid logs a lost coordinator on the root logger; edgebench says it once, in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/labgrid/" not in record.pathname.replace("\\", "/")


def import_labgrid(where: str):
    """labgrid's client module, or one line naming the target file and the extra to install."""
    try:
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2
    except ImportError as exc:
        raise ConfigError(f"{where}: [farm] needs labgrid, which is not installed here ({exc.name or exc}): "
                          f"{INSTALL}") from None
    return client, labgrid_coordinator_pb2


class Coordinator:
    def __init__(self, address: str, where: str):
        self.address, self.where = address, where
        self._client, self._pb = import_labgrid(where)
        self._filter = QuietLabgridLogs()
        logging.getLogger().addFilter(self._filter)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="labgrid-client", daemon=True)
        self._thread.start()
        self._session = None
        try:
            self._session = self._call(self._connect(), CONNECT_TIMEOUT_S, "connecting")
        except BaseException:
            self.close()
            raise

    async def _connect(self):
        session = self._client.ClientSession(self.address, self._loop)
        await session.start()
        return session

    def _call(self, coroutine: Coroutine, timeout_s: float = CALL_TIMEOUT_S, what: str = "a request"):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise ConfigError(f"{self.where}: the labgrid coordinator at {self.address} did not answer "
                              f"({what}) within {timeout_s:.0f} s: is labgrid-coordinator running there and "
                              f"reachable from this host?") from None
        except self._client.Error as exc:
            raise ConfigError(f"{self.where}: labgrid coordinator at {self.address}: {exc} ({what}); is "
                              f"labgrid-coordinator running there and reachable from this host?") from None
        except Exception as exc:  # grpc's AioRpcError and friends: the coordinator's own words
            details = getattr(exc, "details", None)
            said = details() if callable(details) else str(exc)
            raise ConfigError(f"{self.where}: labgrid coordinator at {self.address}: {said} ({what})") from None

    def places(self) -> dict[str, PlaceState]:
        async def read():
            await self._session.sync_with_coordinator()
            return {name: PlaceState(name, dict(p.tags), p.acquired, p.reservation)
                    for name, p in self._session.places.items()}
        return self._call(read(), what="reading the places")

    def reserve(self, tags: dict) -> str:
        """A reservation for one place carrying `tags`: the coordinator allocates one when it is free."""
        pb = self._pb
        request = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=tags)}, prio=0)

        async def create():
            return (await self._session.stub.CreateReservation(request)).reservation.token
        return self._call(create(), what="reserving a place")

    def poll(self, token: str) -> ReservationState:
        """The reservation's state; polling also keeps a waiting reservation alive (it expires after 60 s
        without a poll, an allocated one that is never acquired too)."""
        from labgrid.remote.common import Reservation

        async def poll():
            reply = await self._session.stub.PollReservation(self._pb.PollReservationRequest(token=token))
            return Reservation.from_pb2(reply.reservation)
        res = self._call(poll(), what="polling a reservation")
        places = [name for group in res.allocations.values() for name in group]
        return ReservationState(token, res.state.name, places[0] if places else None)

    def cancel(self, token: str) -> None:
        async def cancel():
            await self._session.stub.CancelReservation(self._pb.CancelReservationRequest(token=token))
        self._call(cancel(), what="cancelling a reservation")

    def acquire(self, place: str) -> None:
        async def acquire():
            await self._session.stub.AcquirePlace(self._pb.AcquirePlaceRequest(placename=place))
            await self._session.sync_with_coordinator()
        self._call(acquire(), what=f"acquiring place {place}")

    def release(self, place: str) -> None:
        async def release():
            await self._session.stub.ReleasePlace(self._pb.ReleasePlaceRequest(placename=place))
            await self._session.sync_with_coordinator()
        self._call(release(), what=f"releasing place {place}")

    def resources(self, place: str) -> dict[str, dict]:
        """The resources an acquired place matched: class name -> its arguments (the exporter's YAML)."""
        async def read():
            await self._session.sync_with_coordinator()
            entries = self._session.get_target_resources(self._session.places[place])
            return {cls: dict(entry.args) for (_, cls), entry in entries.items()}
        return self._call(read(), what=f"reading place {place}'s resources")

    def close(self) -> None:
        try:
            if self._session is not None:
                async def stop():
                    await self._session.stop()
                    await self._session.close()
                try:
                    self._call(stop(), 5.0, "closing")
                except ConfigError:
                    pass  # the coordinator is gone: nothing left to close there
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self._loop.close()
            logging.getLogger().removeFilter(self._filter)
