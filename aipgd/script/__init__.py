"""Scripts: opcodes, script building and (later) the interpreter and signature hashing.

Owns the byte-level encoding of scripts. It must never look at chain state: anything a
script needs from the chain (lock times, amounts) is passed in by the caller.
"""
