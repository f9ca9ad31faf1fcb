"""OCPP charge-point handlers, one per protocol version, behind one interface."""
