"""Announcing chain events to the outside: -blocknotify commands and ZMQ publishers (Core: zmq/,
init.cpp's BlockNotifyCallback).

Each notifier is a Node component that listens to ChainState and does its slow work (a shell, a
socket) on a thread of its own. It must never block the chain or write chain state.
"""
