"""Person names other than the patient's become a fixed dummy, never a random fake name.

dicognito draws fake names from a list of common surnames; a drawn name can be a real
patient's surname in another file. A fixed dummy cannot.
"""

from __future__ import annotations

import secrets

import pydicom
from pydicom.data import get_testdata_file

from node.data.deid import DUMMY_PERSON_NAME, Deidentifier


def test_every_other_person_name_is_the_dummy() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    ds.PatientName = "DOE^JOHN"
    ds.ReferringPhysicianName = "SIMPSON^HOMER"
    ds.OperatorsName = ["FLANDERS^NED", "SZYSLAK^MOE"]

    Deidentifier(secrets.token_bytes(32)).deidentify(ds, "MG-0000000001")

    assert str(ds.PatientName) == "MG-0000000001"
    assert str(ds.ReferringPhysicianName) == DUMMY_PERSON_NAME
    assert str(ds.OperatorsName) == DUMMY_PERSON_NAME
    names = [str(e.value) for e in ds.iterall() if e.VR == "PN" and e.value]
    assert set(names) <= {"MG-0000000001", DUMMY_PERSON_NAME}
