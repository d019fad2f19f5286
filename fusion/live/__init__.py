"""The live node's durability: checkpointed pipeline state and input acknowledged after it."""
