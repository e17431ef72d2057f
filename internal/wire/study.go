package wire

// BlockSize is the largest block an instance's ciphertext is cut into.
const BlockSize = 1 << 20

// Study is what the index and manifests say about a study.
type Study struct {
	UID               string   `json:"uid"`
	PatientID         string   `json:"patient_id"`
	IssuerOfPatientID string   `json:"issuer_of_patient_id,omitempty"`
	PatientName       string   `json:"patient_name"`
	PatientBirthDate  string   `json:"patient_birth_date,omitempty"`
	PatientSex        string   `json:"patient_sex,omitempty"`
	StudyDate         string   `json:"study_date,omitempty"`
	StudyTime         string   `json:"study_time,omitempty"`
	Description       string   `json:"description,omitempty"`
	AccessionNumber   string   `json:"accession_number,omitempty"`
	StudyID           string   `json:"study_id,omitempty"`
	Modalities        []string `json:"modalities"`
}

// BlockRef names one ciphertext block of an instance: a CIDv1 (raw codec,
// SHA2-256) in its string form, and the block's size in bytes.
type BlockRef struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
}

// Instance is the index entry of one instance; manifests carry the same
// record.
type Instance struct {
	Study             string     `json:"study"`
	Series            string     `json:"series"`
	SOPInstanceUID    string     `json:"sop_instance_uid"`
	SOPClassUID       string     `json:"sop_class_uid"`
	TransferSyntaxUID string     `json:"transfer_syntax_uid"`
	Modality          string     `json:"modality,omitempty"`
	SeriesNumber      int        `json:"series_number,omitempty"`
	SeriesDescription string     `json:"series_description,omitempty"`
	InstanceNumber    int        `json:"instance_number,omitempty"`
	Size              int64      `json:"size"`   // plaintext bytes
	Digest            string     `json:"sha256"` // hex SHA-256 of the plaintext Part-10 bytes
	Blocks            []BlockRef `json:"blocks"`
}
