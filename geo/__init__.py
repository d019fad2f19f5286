"""Geography: the local frame, jurisdictions and the geofence that turns tracks into alerts."""

from geo.frame import LocalFrame
from geo.jurisdictions import Jurisdiction, JurisdictionError, load_jurisdictions

__all__ = ["LocalFrame", "Jurisdiction", "JurisdictionError", "load_jurisdictions"]
