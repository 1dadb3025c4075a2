"""Consensus: pure checks of transactions and blocks (Core: consensus/, parts of validation.cpp).

Every function here takes its inputs as arguments and returns a verdict (`ValidationState`
with Core's reject codes and reasons). It must never do I/O, read a clock, or keep state
between calls: chain context (heights, median time past, coins) is passed in.
"""
