"""Built-in plugins, imported as ``zoo_plugins.<name>``. Each is found through the
``zoo.plugins`` entry-point group, like any third-party plugin."""
