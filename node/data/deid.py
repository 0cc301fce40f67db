"""De-identification after DICOM PS3.15 Annex E (Basic Application Level Confidentiality
Profile, with the Retain Longitudinal Temporal Information with Modified Dates option).

Who does what:

* **dicognito** (seeded with the data folder's private secret) replaces every PN with a
  fake name (which the hand rules then replace with a fixed dummy), the listed IDs with fake IDs, institution/address/station data, remaps
  every UI value (except class and transfer syntax UIDs) consistently - the same
  original UID always maps to the same new UID within one data folder, so studies and
  series stay linked - and shifts all DA/DT values by one fixed offset per data folder.
* **Hand rules (this module)** fix what dicognito leaves:
  - private tags are removed (dicognito keeps them), and so are unknown-public (UN)
    elements, overlays (60xx,3000/4000) and curves (50xx);
  - the Annex E "X" attributes dicognito keeps (descriptions, comments, free text,
    patient characteristics, protocol names, request attributes, icon images ...)
    are removed (:data:`REMOVE_KEYWORDS`);
  - PatientName / PatientID become the pseudonym; birth date emptied (Annex E "Z");
  - every DA/DT/TM value is validated and emptied when it is not a valid value;
  - PatientIdentityRemoved=YES (dicognito only sets it when BurnedInAnnotation=NO),
    DeidentificationMethod and DeidentificationMethodCodeSequence (113100, 113107),
    LongitudinalTemporalInformationModified=MODIFIED;
  - a final sweep blanks any text element that still contains one of the original
    identifying strings (name parts, IDs, birth date, institution) - free text such as
    a description quoting the patient's name;
  - the 128-byte preamble is zeroed and the file meta rebuilt from the new UIDs.

Known limits: burned-in text in the pixels is not detected (files that declare
BurnedInAnnotation=YES are refused by ingest instead); identifying data inside
retained coded sequences or in pixel-embedded overlays of unusual encodings is not
inspected; the date shift is one offset per data folder, not per patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

__all__ = ["DEIDENTIFICATION_METHOD", "REMOVE_KEYWORDS", "Deidentifier", "identifying_strings"]

DUMMY_PERSON_NAME = "REMOVED"
"""every person name other than the patient's (which becomes the pseudonym)."""
DEIDENTIFICATION_METHOD = "medgossip PS3.15 E basic + modified dates; dicognito"

# Annex E basic-profile attributes with action X (remove) - or D/Z where removing is
# allowed because the attribute is Type 3 - that dicognito does not otherwise handle.
REMOVE_KEYWORDS: tuple[str, ...] = (
    "AcquisitionComments", "AcquisitionContextSequence",
    "AcquisitionDeviceProcessingDescription", "AcquisitionProtocolDescription",
    "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AdmissionID",
    "AdmittingDate", "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription",
    "AdmittingTime", "Allergies", "AuthorObserverSequence", "BranchOfService",
    "CassetteID", "CommentsOnThePerformedProcedureStep",
    "ConfidentialityConstraintOnPatientDataDescription", "ContentSequence",
    "ContributionDescription", "CountryOfResidence", "CurrentPatientLocation",
    "CustodialOrganizationSequence", "DataSetTrailingPadding", "DerivationDescription",
    "DetectorID", "DeviceSerialNumber", "DeviceUID", "DigitalSignaturesSequence",
    "DischargeDiagnosisDescription", "DistributionAddress", "DistributionName",
    "EthnicGroup", "FrameComments", "GantryID", "GeneratorID", "HumanPerformerName",
    "HumanPerformerOrganization", "IconImageSequence", "IdentifyingComments",
    "ImageComments", "ImagePresentationComments", "ImagingServiceRequestComments",
    "Impressions", "InstitutionAddress", "InstitutionalDepartmentName",
    "InsurancePlanIdentification", "IntendedRecipientsOfResultsIdentificationSequence",
    "InterpretationApproverSequence", "InterpretationAuthor",
    "InterpretationDiagnosisDescription", "InterpretationIDIssuer",
    "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber",
    "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfServiceEpisodeID",
    "LastMenstrualDate", "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank",
    "ModifiedAttributesSequence", "ModifyingDeviceID", "ModifyingDeviceManufacturer",
    "NamesOfIntendedRecipientsOfResults", "Occupation", "OriginalAttributesSequence",
    "OrderCallbackPhoneNumber", "OrderEnteredBy", "OrderEntererLocation",
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "ParticipantSequence",
    "PatientAddress", "PatientAge", "PatientBirthName", "PatientBirthTime",
    "PatientComments", "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence",
    "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence",
    "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference",
    "PatientSexNeutered", "PatientSize", "PatientState", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "PatientTransportArrangements", "PatientWeight",
    "PerformedLocation", "PerformedProcedureStepDescription", "PerformedProcedureStepID",
    "PerformedStationAETitle", "PerformedStationGeographicLocationCodeSequence",
    "PerformedStationName", "PerformedStationNameCodeSequence",
    "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName",
    "PersonAddress", "PersonIdentificationCodeSequence", "PersonTelephoneNumbers",
    "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence", "PlateID", "PreMedication",
    "PregnancyStatus", "ProtocolName", "ReasonForTheImagingServiceRequest",
    "ReasonForStudy", "ReferencedDigitalSignatureSequence",
    "ReferencedPatientAliasSequence", "ReferencedPatientPhotoSequence",
    "ReferencedSOPInstanceMACSequence", "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence", "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence", "RequestAttributesSequence", "RequestedContrastAgent",
    "RequestedProcedureComments", "RequestedProcedureDescription",
    "RequestedProcedureID", "RequestedProcedureLocation", "RequestingPhysician",
    "RequestingService", "ResponsibleOrganization", "ResponsiblePerson",
    "ResultsComments", "ResultsDistributionListSequence", "ResultsIDIssuer",
    "ScheduledHumanPerformersSequence", "ScheduledPatientInstitutionResidence",
    "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepLocation", "ScheduledStationAETitle",
    "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
    "ScheduledStationNameCodeSequence", "ScheduledStudyLocation",
    "ScheduledStudyLocationAETitle", "SeriesDescription", "ServiceEpisodeDescription",
    "ServiceEpisodeID", "SmokingStatus", "SpecialNeeds", "StudyComments",
    "StudyDescription", "StudyIDIssuer", "TextComments", "TextString", "TopicAuthor",
    "TopicKeywords", "TopicSubject", "TopicTitle",
    "VerifyingObserverIdentificationCodeSequence", "VerifyingOrganization",
    "VisitComments", "SourceApplicationEntityTitle",
)

_TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "CS", "UR"})
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")
_MIN_SWEEP_LEN = 3  # shorter original strings would blank unrelated values


def _remove_tags() -> frozenset[int]:
    from pydicom.datadict import tag_for_keyword

    tags = set()
    for keyword in REMOVE_KEYWORDS:
        tag = tag_for_keyword(keyword)
        if tag is not None:
            tags.add(int(tag))
    return frozenset(tags)


def _values(element: DataElement) -> list[str]:
    value = element.value
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def identifying_strings(ds: Dataset) -> frozenset[str]:
    """The original identifying strings of a dataset, for the residual-PHI sweep."""
    found: set[str] = set()
    for keyword in ("PatientID", "OtherPatientIDs", "PatientBirthDate", "InstitutionName",
                    "IssuerOfPatientID", "PatientBirthName", "PatientMotherBirthName",
                    "OtherPatientNames", "PatientAddress", "InstitutionAddress",
                    "AccessionNumber", "PatientTelephoneNumbers"):
        if keyword in ds:
            found.update(v.strip() for v in _values(ds[keyword]))
    for keyword in ("PatientName", "OtherPatientNames", "PatientBirthName"):
        if keyword in ds:
            for value in _values(ds[keyword]):
                found.add(value.strip())
                found.update(part.strip() for part in re.split(r"[\^=]", value))
    return frozenset(s for s in found if len(s) >= _MIN_SWEEP_LEN)


def _valid_temporal(vr: str, value: str) -> bool:
    value = value.strip()
    if value == "":
        return True
    if vr == "DA":
        if not _DA.fullmatch(value):
            return False
        month, day = int(value[4:6]), int(value[6:8])
        return 1 <= month <= 12 and 1 <= day <= 31
    if vr == "TM":
        if not _TM.fullmatch(value):
            return False
        hh = int(value[0:2])
        mm = int(value[2:4]) if len(value) >= 4 else 0
        ss = int(value[4:6]) if len(value) >= 6 else 0
        return hh < 24 and mm < 60 and ss < 61
    if vr == "DT":
        return bool(_DT.fullmatch(value))
    return True


class Deidentifier:
    """De-identifies datasets of one data folder; ``secret`` keeps remapping consistent.

    The secret seeds dicognito: the same secret maps the same UID to the same new UID
    and shifts dates by the same offset, which is what makes re-ingesting idempotent and
    keeps multi-file studies linked. It must stay private (it lives in the linkage file):
    whoever knows it can test guesses of original UIDs against the output.
    """

    def __init__(self, secret: bytes) -> None:
        from dicognito.anonymizer import Anonymizer

        self._anonymizer = Anonymizer(seed=secret.hex())
        self._remove = _remove_tags()

    def deidentify(self, ds: Dataset, pseudonym: str) -> None:
        """De-identify ``ds`` in place for the patient known as ``pseudonym``."""
        from pydicom.dataset import Dataset as _Dataset
        from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

        originals = identifying_strings(ds)
        ds.remove_private_tags()
        ds.walk(self._strip_element)
        self._anonymizer.anonymize(ds)
        ds.walk(self._strip_element)  # dicognito adds a fake InstitutionAddress

        ds.PatientName = pseudonym
        ds.PatientID = pseudonym
        ds.PatientBirthDate = ""
        if "PatientSex" in ds and str(ds.PatientSex) not in ("M", "F", "O", ""):
            ds.PatientSex = ""
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
        codes = []
        for value, meaning in (("113100", "Basic Application Confidentiality Profile"),
                               ("113107", "Retain Longitudinal Temporal Information "
                                          "Modified Dates Option")):
            item = _Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = codes
        ds.LongitudinalTemporalInformationModified = "MODIFIED"

        sweep = tuple(s.lower() for s in originals if s.lower() not in pseudonym.lower())
        ds.walk(lambda d, e: self._finish_element(d, e, sweep))

        meta = ds.file_meta
        for tag in [t for t in meta.keys() if t.element != 0x0010 and t.group == 0x0002]:
            del meta[tag]
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "MEDGOSSIP_1"
        ds.preamble = b"\x00" * 128

    def _strip_element(self, ds: Dataset, element: DataElement) -> None:
        tag = element.tag
        if (
            int(tag) in self._remove
            or (tag.group & 0xFF00) == 0x5000  # curves
            or ((tag.group & 0xFF00) == 0x6000 and tag.element in (0x3000, 0x4000))
            or (element.VR == "UN" and tag != 0x7FE00010)
        ):
            del ds[tag]

    @staticmethod
    def _finish_element(ds: Dataset, element: DataElement, sweep: Iterable[str]) -> None:
        vr = element.VR
        if vr in ("DA", "TM", "DT"):
            if not all(_valid_temporal(vr, v) for v in _values(element)):
                element.value = ""
            return
        if vr == "PN" and element.tag != 0x00100010 and element.value not in (None, ""):
            # dicognito puts random fake names here, drawn from a list of common
            # surnames: one can be a real patient's name elsewhere. A fixed dummy
            # (Annex E action D) carries no such coincidence.
            element.value = DUMMY_PERSON_NAME
            return
        if vr in _TEXT_VRS and element.value not in (None, ""):
            text = " ".join(_values(element)).lower()
            if any(s in text for s in sweep):
                element.value = ""
