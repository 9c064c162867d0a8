package socialgraph_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock is the first fenced block of the given language after heading
// in the project's README.
func readmeBlock(t *testing.T, heading, language string) string {
	t.Helper()
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(readme), "\n"+heading+"\n")
	if !found {
		t.Fatalf("README has no %q", heading)
	}
	_, block, found := strings.Cut(section, "```"+language+"\n")
	if !found {
		t.Fatalf("README's %q has no %s block", heading, language)
	}
	code, _, _ := strings.Cut(block, "```")
	return code
}

func TestReadmeSnippetRunsAsWritten(t *testing.T) {
	// Inside the module, so the snippet imports it as a user's program would.
	dir, err := os.MkdirTemp(".", "_readme")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(readmeBlock(t, "### Go", "go")), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command("go", "run", "./"+dir)
	run.Env = append(os.Environ(), "SOCIALGRAPH_ADDRESS="+serverAddress)
	output, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("go run: %v\n%s", err, output)
	}
	if want := "true\nInvalidArgument INVALID_USER_ID followee_id\n"; string(output) != want {
		t.Fatalf("output %q, want %q", output, want)
	}
}
