"""Actions: every integration behind one small interface, found through one registry."""
