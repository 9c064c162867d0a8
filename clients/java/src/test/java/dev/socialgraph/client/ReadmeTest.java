package dev.socialgraph.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReadmeTest {
  private static TestServer server;

  @BeforeAll
  static void start() throws Exception {
    server = TestServer.start();
  }

  @AfterAll
  static void stop() throws Exception {
    if (server != null) {
      server.close();
    }
  }

  private static String readmeBlock(String heading, String language) throws Exception {
    String readme = Files.readString(Path.of("../../README.md"));
    int section = readme.indexOf("\n" + heading + "\n");
    assertTrue(section >= 0, "README has no " + heading);
    String fence = "```" + language + "\n";
    int start = readme.indexOf(fence, section);
    assertTrue(start >= 0, "README's " + heading + " has no " + language + " block");
    start += fence.length();
    return readme.substring(start, readme.indexOf("```", start));
  }

  @Test
  void javaSnippetCompilesAndRunsAsWritten(@TempDir Path directory) throws Exception {
    Files.writeString(directory.resolve("Example.java"), readmeBlock("### Java", "java"));
    String classpath = System.getProperty("java.class.path");
    int compiled =
        ToolProvider.getSystemJavaCompiler()
            .run(
                null,
                null,
                null,
                "-classpath",
                classpath,
                "-d",
                directory.toString(),
                directory.resolve("Example.java").toString());
    assertEquals(0, compiled, "javac failed on the README's Java snippet");
    String java = ProcessHandle.current().info().command().orElse("java");
    ProcessBuilder run =
        new ProcessBuilder(java, "-cp", directory + File.pathSeparator + classpath, "Example")
            .redirectErrorStream(true);
    run.environment().put("SOCIALGRAPH_ADDRESS", server.address);
    Process process = run.start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(process.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, process.exitValue(), output);
    assertEquals("true\nINVALID_ARGUMENT INVALID_USER_ID followee_id\n", output);
  }
}
