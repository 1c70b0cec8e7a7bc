"""The rehearsal: the whole programme at its real size, phase by phase (see __main__)."""
