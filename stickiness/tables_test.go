package stickiness

// tbl returns the Tables of one name; "" names none.
func tbl(name string) Tables {
	if name == "" {
		return Tables{}
	}
	return Tables{Names: []string{name}}
}
