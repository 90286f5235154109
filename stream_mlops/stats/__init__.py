"""Pure statistics: values and a clock in, decisions out. Nothing here performs I/O."""
