"""Personal data: erasure (forget), export of a person, retention."""
