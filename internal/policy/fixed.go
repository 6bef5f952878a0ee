package policy

import "fmt"

// Fixed always recommends Size. It reads no data, so it is how a check keeps a floor (with
// the safe combination, a larger recommendation still wins) or sizes a group without metrics.
type Fixed struct {
	Size int
}

func (Fixed) Kind() string    { return StrategyFixed }
func (Fixed) ReadsData() bool { return false }

func (f Fixed) Validate(Check) FieldErrors {
	var errs FieldErrors
	if f.Size < 0 {
		errs.add("size", "must not be negative, got %d", f.Size)
	}
	return errs
}

func (f Fixed) Recommend(c Check, _ float64, _ int) (int, string) {
	size := max(f.Size, 0)
	return size, fmt.Sprintf("%s fixed size → %d", c.Name, size)
}
