package dimse

import "github.com/pacsnet/pacsnet/dicomio"

// The small data sets DIMSE carries (identifiers, answers, storage
// commitment) are dicomio's.
type (
	Dataset = dicomio.Dataset
	Element = dicomio.Element
)

// MaxIdentifier bounds an identifier (dicomio.MaxIdentifier).
const MaxIdentifier = dicomio.MaxIdentifier

// DecodeDataset is dicomio.DecodeDataset.
func DecodeDataset(b []byte, ts string) (Dataset, error) { return dicomio.DecodeDataset(b, ts) }
