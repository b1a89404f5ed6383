"""Exports that devices take as they are: OCPP charging profiles for chargers, Redfish power caps for blades.

See :mod:`scheduler.exports.ocpp` and :mod:`scheduler.exports.redfish` for the file formats and the rules
they keep; :mod:`scheduler.exports.cli` holds the ``evdc export`` commands.
"""

from .ocpp import bind_transaction, call_frame, check_profile_rules, ocpp_messages, write_ocpp
from .redfish import job_placement_lines, redfish_schedules, write_redfish

__all__ = ["bind_transaction", "call_frame", "check_profile_rules", "job_placement_lines", "ocpp_messages",
           "redfish_schedules", "write_ocpp", "write_redfish"]
