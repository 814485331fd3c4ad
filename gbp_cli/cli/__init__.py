"""The command line: options, and one module per command that parses and wires library stages."""
