"""The built-in scenario catalog: real models, trained or exported by aiaas, each with a measured card."""
