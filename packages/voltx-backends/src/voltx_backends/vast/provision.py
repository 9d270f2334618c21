"""Renting one instance for one job, waiting until SSH answers, and giving it back.

The steps, and the lesson each one carries (docs/vast.md, "Renting and giving back"):

1. **Look before renting.** Instances are found by their label, ``voltx-<run>-<phase>``: the only
   link between Vast's state and ours that survives a crash. An instance with the label that is
   still loading or running is adopted, never rented twice; a dead one is destroyed.
2. **Rent the cheapest offer that fits,** trying the next one when an offer vanished since the
   search (404/410). A rental whose answer was lost (5xx, timeout) is looked up by label before
   anything else is tried.
3. **Wait for ``running``** under a deadline. An instance that exits or goes offline while loading
   is destroyed and replaced on another machine (the failed machine is excluded from the next
   search), a bounded number of times, and never while the dead one still exists.
4. **Wait for SSH**: a TCP probe that must read an ``SSH-`` banner (direct address first, then
   Vast's proxy), then a real login with the run's key. The instance's host key is pinned on that
   first login in a known_hosts file of its own (``accept-new``), deleted with the instance.
5. **Check the machine**: an offer says what its host reported, not what the container sees. For a
   job that needs GPUs, the first login probes them (count, memory, CUDA driver); an instance
   short of what the job needs is destroyed and replaced on another machine, as in step 3.

Every rental is registered with the backend the moment its id is known, so that whatever happens
next (an error, a cancel, Ctrl-C, the backend closing) destroys it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.errors import BackendError
from voltx.spec import Resources
from voltx_backends.ssh import HostKeyError, SSHBackend, TransportError
from voltx_backends.vast._local import LocalState
from voltx_backends.vast.client import OfferUnavailableError, VastAPIError, VastClient
from voltx_backends.vast.instances import Condition, Instance
from voltx_backends.vast.machine import machine_problems, onstart_script
from voltx_backends.vast.offers import Offer, OfferQuery
from voltx_backends.vast.settings import VastSettings

log = structlog.get_logger(__name__)

# The docs name it ssh_direct; the official client sends these truncated tokens, and images
# report "ssh ssh_direc ssh_proxy". Direct when the machine has open ports, else the proxy.
RUNTYPE = "ssh_direc ssh_proxy"
BANNER_TIMEOUT_S = 2.0
# Offer searches come from a cache; after every offer of one search vanished, search again once.
SEARCH_ROUNDS = 2


class ProvisionCancelled(Exception):
    """The job was cancelled (or the backend closed) while its instance was being prepared."""


class InstanceDiedError(BackendError):
    """The instance exited, went offline or vanished before it was ready."""

    def __init__(self, message: str, instance: Instance | None) -> None:
        self.instance = instance
        super().__init__(message, "vast")


class MachineMismatchError(InstanceDiedError):
    """The instance runs, but its GPUs, their memory or its CUDA are short of what the job needs."""


@attrs.define(eq=False)
class Rental:
    """One instance voltx holds, and the SSH backend that reaches it once it answers."""

    instance: Instance
    label: str
    run_id: str | None
    known_hosts: Path
    ssh: SSHBackend | None = None
    destroyed: bool = False

    @property
    def id(self) -> int:
        return self.instance.id

    def describe(self) -> str:
        machine = f" on machine {self.instance.machine_id}" if self.instance.machine_id else ""
        return f"instance {self.instance.id}{machine}"


def ssh_banner(host: str, port: int, timeout_s: float = BANNER_TIMEOUT_S) -> bool:
    """Whether an SSH server answers at host:port (it sends ``SSH-`` first)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.settimeout(timeout_s)
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class Provisioner:
    """Rents, waits for, adopts and destroys instances for the Vast backend."""

    def __init__(
        self,
        client: VastClient,
        settings: VastSettings,
        state: LocalState,
        register: Callable[[Rental], None],
        unregister: Callable[[Rental], None],
    ) -> None:
        self.client = client
        self.settings = settings
        self.state = state
        self._register = register
        self._unregister = unregister

    # -- the whole way to a usable instance ------------------------------------------------

    def obtain(
        self,
        label: str,
        resources: Resources,
        run_id: str | None,
        cancel: threading.Event,
        report: Callable[[str], None],
    ) -> Rental:
        """An instance labelled `label` that answers SSH: adopted if one exists, else rented.

        Raises `ProvisionCancelled` when `cancel` is set, a `BackendError` when no instance
        could be had; either way nothing stays rented.
        """
        private_key, public_key = self.state.run_key(run_id or label)
        excluded: set[int] = set()
        deaths: list[str] = []
        deadline = time.monotonic() + self.settings.provision_timeout_s
        for _round in range(self.settings.max_replacements + 1):
            # Written before renting: `voltx vast reap` must see the label as owned from the start.
            self.state.write_lease(label, run_id, None)
            rental = self._adopt_or_rent(label, resources, run_id, public_key, excluded, cancel)
            try:
                report(f"waiting for {rental.describe()}")
                self.wait_running(rental, deadline, cancel, report)
                self.connect(rental, private_key, public_key, cancel, report)
                self.check_machine(rental, resources, report)
                return rental
            except InstanceDiedError as exc:
                deaths.append(str(exc))
                if isinstance(exc, MachineMismatchError):
                    log.warning(
                        "instance is short of what the job needs; replacing it", error=str(exc)
                    )
                else:
                    log.warning("instance died while loading; replacing it", error=str(exc))
                self.destroy(rental)
                if rental.instance.machine_id is not None:
                    excluded.add(rental.instance.machine_id)
            except BaseException:
                self.destroy(rental)
                raise
        raise BackendError(
            f"{label}: gave up after {len(deaths)} instance(s) died while loading "
            "or were short of what the job needs: " + "; ".join(deaths),
            "vast",
        )

    def reach(
        self,
        instance: Instance,
        run_id: str | None,
        cancel: threading.Event,
        report: Callable[[str], None],
    ) -> Rental:
        """Log in to an instance rented earlier (waiting if it still loads), taking nothing
        over: no lease, not registered. `InstanceDiedError` if it dies meanwhile."""
        private_key, public_key = self.state.run_key(run_id or instance.label)
        rental = Rental(instance, instance.label, run_id, self.state.known_hosts(instance.id))
        try:
            deadline = time.monotonic() + self.settings.provision_timeout_s
            self.wait_running(rental, deadline, cancel, report)
            self.connect(rental, private_key, public_key, cancel, report)
        except BaseException:
            if rental.ssh is not None:
                rental.ssh.close()
            raise
        return rental

    # -- renting ---------------------------------------------------------------------------

    def labelled(self, label: str) -> list[Instance]:
        """The account's instances that carry `label`."""
        return [instance for instance in self.client.list_instances() if instance.label == label]

    def _adopt_or_rent(
        self,
        label: str,
        resources: Resources,
        run_id: str | None,
        public_key: str,
        excluded: set[int],
        cancel: threading.Event,
    ) -> Rental:
        usable: list[Instance] = []
        for instance in self.labelled(label):
            if instance.condition is Condition.DEAD or instance.machine_id in excluded:
                log.info("destroying a dead instance of ours", instance=instance.id, label=label)
                self.client.destroy_instance(instance.id)
            else:
                usable.append(instance)
        for extra in usable[1:]:
            # Never two instances for one job: keep the first, give back the rest.
            log.warning("destroying a duplicate instance", instance=extra.id, label=label)
            self.client.destroy_instance(extra.id)
        if usable:
            log.info("adopting an instance rented earlier", instance=usable[0].id, label=label)
            self.state.write_lease(label, run_id, usable[0].id)
            return self._track(usable[0], label, run_id)
        if cancel.is_set():
            raise ProvisionCancelled
        instance_id = self._rent(label, resources, public_key, excluded, cancel)
        self.state.write_lease(label, run_id, instance_id)
        rental = self._track(Instance(id=instance_id, label=label), label, run_id)
        log.info("instance rented", instance=instance_id, label=label)
        return rental

    def _track(self, instance: Instance, label: str, run_id: str | None) -> Rental:
        rental = Rental(instance, label, run_id, self.state.known_hosts(instance.id))
        self._register(rental)
        return rental

    def _rent(
        self,
        label: str,
        resources: Resources,
        public_key: str,
        excluded: set[int],
        cancel: threading.Event,
    ) -> int:
        query = OfferQuery.build(
            resources,
            self.settings.offer_filters(),
            disk_gb=self.settings.disk_gb,
            exclude_machines=excluded,
            limit=self.settings.offer_limit,
        )
        for _search in range(SEARCH_ROUNDS):
            offers = self.client.search_offers(query)
            if not offers:
                raise BackendError(f"no Vast.ai offer matches: {query.describe()}", "vast")
            for offer in offers:
                if cancel.is_set():
                    raise ProvisionCancelled
                try:
                    body = self.create_body(offer, label, public_key)
                    return self.client.create_instance(offer.id, body)
                except OfferUnavailableError:
                    log.info("offer vanished before it could be rented", offer=offer.id)
                except VastAPIError as exc:
                    if not exc.may_have_happened:
                        raise
                    # The answer was lost, not necessarily the rental: look before renting again.
                    found = self.labelled(label)
                    if found:
                        return found[0].id
                    log.warning("renting failed; trying the next offer", error=str(exc))
        raise BackendError(
            f"every Vast.ai offer that matched was taken before voltx could rent it "
            f"({SEARCH_ROUNDS} searches): {query.describe()}",
            "vast",
        )

    def create_body(self, offer: Offer, label: str, public_key: str) -> dict[str, Any]:
        """The body of ``PUT /api/v0/asks/{offer}/``, every field the official client sends."""
        settings = self.settings
        price = None
        if settings.interruptible:
            price = offer.min_bid if offer.min_bid is not None else offer.dph_total
        return {
            "client_id": "me",
            "image": settings.image,
            "env": dict(settings.env),
            "price": price,
            "disk": max(settings.disk_gb, 1.0),
            "label": label,
            "extra": None,
            "onstart": onstart_script(public_key, settings.onstart),
            "image_login": None,
            "python_utf8": False,
            "lang_utf8": False,
            "use_jupyter_lab": False,
            "jupyter_dir": None,
            "force": False,
            # Fail rather than leave a stopped instance when the machine cannot start it now.
            "cancel_unavail": True,
            "template_hash_id": None,
            "user": None,
            "runtype": RUNTYPE,
            "target_state": "running",
        }

    # -- waiting ---------------------------------------------------------------------------

    def wait_running(
        self,
        rental: Rental,
        deadline: float,
        cancel: threading.Event,
        report: Callable[[str], None],
    ) -> None:
        """Poll the instance until it runs; `InstanceDiedError` if it dies or vanishes."""
        while True:
            instance = self.client.show_instance(rental.id)
            if instance is None:
                raise InstanceDiedError(f"{rental.describe()} vanished while loading", None)
            rental.instance = instance
            if instance.condition is Condition.RUNNING:
                return
            if instance.condition is Condition.DEAD:
                raise InstanceDiedError(
                    f"{rental.describe()} went {instance.state} while loading"
                    + (f": {instance.status_msg}" if instance.status_msg else ""),
                    instance,
                )
            report(
                f"{rental.describe()} is {instance.state}"
                + (f": {instance.status_msg}" if instance.status_msg else "")
            )
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{rental.describe()} was not running after "
                    f"{self.settings.provision_timeout_s:g} s (provision_timeout_s); last state "
                    f"{instance.state}"
                    + (f": {instance.status_msg}" if instance.status_msg else ""),
                    "vast",
                )
            if cancel.wait(self.settings.poll_s):
                raise ProvisionCancelled

    def connect(
        self,
        rental: Rental,
        private_key: Path,
        public_key: str,
        cancel: threading.Event,
        report: Callable[[str], None],
    ) -> None:
        """Wait until the instance lets us log in; sets `rental.ssh`."""
        try:
            # A second route for the key beside onstart (which an adopted instance may have run
            # for another key); the login below shows whether either worked.
            self.client.attach_ssh_key(rental.id, public_key)
        except VastAPIError as exc:
            log.info("could not attach the run's key through the API", error=str(exc))
        deadline = time.monotonic() + self.settings.ssh_timeout_s
        next_check = time.monotonic() + self.settings.poll_s
        last_error = "no SSH address published yet"
        while True:
            for host, port in rental.instance.endpoints():
                if not ssh_banner(host, port):
                    last_error = f"nothing answers SSH at {host}:{port}"
                    continue
                ssh = self.ssh_backend(rental, host, port, private_key)
                try:
                    result = ssh.transport.run("true", timeout=self.settings.connect_timeout_s + 20)
                except HostKeyError:
                    ssh.close()
                    raise
                except TransportError as exc:
                    ssh.close()
                    last_error = str(exc)
                    continue
                if result.returncode == 0:
                    rental.ssh = ssh
                    report(f"{rental.describe()} answers SSH at {host}:{port}")
                    return
                ssh.close()
                last_error = (
                    f"a login to {host}:{port} ran `true` with exit code {result.returncode}"
                )
            report(f"{rental.describe()} is running; waiting for SSH ({last_error})")
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{rental.describe()} did not answer SSH within "
                    f"{self.settings.ssh_timeout_s:g} s (ssh_timeout_s): {last_error}",
                    "vast",
                )
            if cancel.wait(min(1.0, self.settings.poll_s)):
                raise ProvisionCancelled
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.settings.poll_s
                instance = self.client.show_instance(rental.id)
                if instance is None or instance.condition is Condition.DEAD:
                    state = instance.state if instance else "gone"
                    raise InstanceDiedError(
                        f"{rental.describe()} went {state} before SSH answered", instance
                    )
                rental.instance = instance

    def check_machine(
        self, rental: Rental, resources: Resources, report: Callable[[str], None]
    ) -> None:
        """`MachineMismatchError` unless the instance has the GPUs, GPU memory and CUDA the job
        needs (`machine_problems`); the probe is the SSH backend's, kept for the job."""
        if resources.gpus <= 0:
            return
        assert rental.ssh is not None, "check_machine needs a connected rental"
        info = rental.ssh.host_info()
        problems = machine_problems(info, resources, self.settings)
        if problems:
            raise MachineMismatchError(
                f"{rental.describe()} is short of what the job needs: " + "; ".join(problems),
                rental.instance,
            )
        memories = ", ".join(f"{round(gb * 1024)} MiB" for gb in info.gpu_memories_gb)
        report(
            f"{rental.describe()} has {len(info.gpu_memories_gb)} GPU(s) ({memories})"
            + (f", CUDA {info.cuda}" if info.cuda else "")
        )

    def ssh_backend(self, rental: Rental, host: str, port: int, private_key: Path) -> SSHBackend:
        """The SSH backend that runs jobs on the instance at host:port."""
        settings = self.settings
        return SSHBackend(
            host=host,
            port=port,
            user=settings.ssh_user,
            identity_file=str(private_key),
            known_hosts=str(rental.known_hosts),
            strict_host_key_checking="accept-new",
            python=settings.python,
            remote_root=settings.remote_root,
            bootstrap=settings.bootstrap,
            packages=settings.packages,
            plugins=settings.plugins,
            system_site_packages=settings.system_site_packages,
            pip_args=settings.pip_args,
            forward_env=settings.forward_env,
            transfer=settings.transfer,
            connect_timeout_s=settings.connect_timeout_s,
            unreachable_timeout_s=settings.unreachable_timeout_s,
            checkpoint_pull_s=settings.checkpoint_pull_s,
        )

    # -- giving back -----------------------------------------------------------------------

    def destroy(self, rental: Rental) -> None:
        """Destroy the instance and forget everything about it here. Safe to call twice.

        If the API refuses, the rental stays registered, so that closing the backend tries
        again (and ``voltx vast reap`` finds it later).
        """
        if rental.destroyed:
            return
        try:
            gone = not self.client.destroy_instance(rental.id)
        except VastAPIError as exc:
            log.error("could not destroy an instance", instance=rental.id, error=str(exc))
            raise
        log.info(
            "instance destroyed" if not gone else "instance already gone",
            instance=rental.id,
            label=rental.label,
        )
        rental.destroyed = True
        self.forget(rental)
        self.state.release_lease(rental.label)

    def forget(self, rental: Rental, *, unpin: bool = True) -> None:
        """Drop the local side of a rental: its connection, its entry, and (`unpin`) its pinned
        host key. A reader of someone else's instance keeps the pin: the owner still uses it."""
        if rental.ssh is not None:
            with contextlib.suppress(Exception):
                rental.ssh.close()
        if unpin:
            with contextlib.suppress(FileNotFoundError):
                rental.known_hosts.unlink()
        self._unregister(rental)
