package stickiness

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestConfigwithDefaults(t *testing.T) {
	store := mustMemory(t, MemoryOptions{})
	t.Cleanup(func() { store.Close() })
	tests := []struct {
		name string
		give Config
		want Config // Key is checked apart
	}{
		{name: "zero", give: Config{}, want: Config{Mode: ModeCausal, Window: DefaultWindow, StoreTimeout: DefaultStoreTimeout}},
		{
			name: "set",
			give: Config{Mode: ModeWindow, Window: time.Minute, Store: store, StoreTimeout: time.Second, Tables: true},
			want: Config{Mode: ModeWindow, Window: time.Minute, Store: store, StoreTimeout: time.Second, Tables: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give.withDefaults()
			if err != nil {
				t.Fatalf("withDefaults: %v", err)
			}
			if got.Key == nil {
				t.Fatal("Key is nil")
			}
			if k, ok := got.Key(WithUser(context.Background(), "u1")); k != "u1" || !ok {
				t.Errorf("Key = %q, %v, want u1, true", k, ok)
			}
			got.Key = nil
			if got.Mode != tt.want.Mode || got.Window != tt.want.Window || got.Store != tt.want.Store ||
				got.StoreTimeout != tt.want.StoreTimeout || got.Tables != tt.want.Tables {
				t.Errorf("withDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigwithDefaultsErrors(t *testing.T) {
	tests := []struct {
		name string
		give Config
	}{
		{name: "negative window", give: Config{Window: -time.Second}},
		{name: "negative store timeout", give: Config{StoreTimeout: -time.Millisecond}},
		{name: "unknown mode", give: Config{Mode: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.give.withDefaults(); !errors.Is(err, ErrConfig) {
				t.Errorf("withDefaults error = %v, want ErrConfig", err)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		give Mode
		want string
	}{
		{give: ModeCausal, want: "causal"},
		{give: ModeWindow, want: "window"},
		{give: 9, want: "Mode(9)"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("Mode(%d).String() = %q, want %q", uint8(tt.give), got, tt.want)
		}
	}
}
