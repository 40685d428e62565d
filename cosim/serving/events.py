"""Discrete events. Each handles itself at its time and returns the events it causes.

`handle(now)` returns an iterable of (time, event) pairs (or None); the engine schedules them.
Handlers delegate to the deployment, which owns the instances and the router, so that an
event class stays a few lines and a deployment's behaviour can be tested without the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from cosim.serving.instance import Instance


class Event:
    """Base class: something that happens at a simulated time."""

    __slots__ = ()

    def handle(self, now: float) -> FollowUps:
        raise NotImplementedError


# What a handler returns: the (time, event) pairs it causes, or None for none.
FollowUps = Iterable[tuple[float, Event]] | None


class DeploymentHooks(Protocol):
    """The two hooks the events call (cosim.serving.deployments.base.Deployment has them)."""

    def on_arrival(self, now: float, rid: int) -> FollowUps: ...

    def on_iteration_end(self, now: float, inst: Instance) -> FollowUps: ...


class RequestArrival(Event):
    """A request is issued to the deployment (it routes and enqueues it)."""

    __slots__ = ("deployment", "rid")

    def __init__(self, deployment: DeploymentHooks, rid: int):
        self.deployment = deployment
        self.rid = rid

    def handle(self, now: float) -> FollowUps:
        return self.deployment.on_arrival(now, self.rid)


class IterationEnd(Event):
    """An instance's iteration ends; it applies the iteration and starts the next one.

    One object per instance, rescheduled for every iteration (an instance has at most one
    iteration in flight), so the hot path allocates no event objects.
    """

    __slots__ = ("deployment", "instance")

    def __init__(self, deployment: DeploymentHooks, instance: Instance):
        self.deployment = deployment
        self.instance = instance

    def handle(self, now: float) -> FollowUps:
        return self.deployment.on_iteration_end(now, self.instance)


class Callback(Event):
    """A deployment-defined happening (e.g. a KV transfer completes): calls fn(now)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[float], FollowUps]):
        self.fn = fn

    def handle(self, now: float) -> FollowUps:
        return self.fn(now)
