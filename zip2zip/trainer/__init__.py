"""Training zip2zip models with TRL: the config, the trainer, its data, losses, callbacks and the recipe's presets."""
