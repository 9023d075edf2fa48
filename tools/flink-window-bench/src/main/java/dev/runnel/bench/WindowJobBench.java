package dev.runnel.bench;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.serialization.SimpleStringEncoder;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.sink.FileSink;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.reader.TextLineInputFormat;
import org.apache.flink.core.fs.Path;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * Job against job for bench/stream-window.ts: the same JSON events Runnel's runner reads from its
 * log, here read by a FileSource from a file of JSON lines ({"user_id","amount","ts"}), parsed with
 * Jackson, 5 s bounded out-of-orderness watermarks, keyBy(user), 1-minute tumbling event-time
 * windows, count+sum, written as JSON lines by a FileSink (files committed on checkpoints), with
 * checkpoints every 10 s (Runnel's default interval) to a filesystem checkpoint storage.
 * Parallelism 1 in a local mini cluster.
 *
 * <p>Timing: from the first record parsed to execute() returning (the end of input closes every
 * window, a final checkpoint commits the sink's files); process CPU time over the same span.
 * Every round is a new job in the same JVM, its results in {@code base}/{round}/out.
 * Usage: java ... dev.runnel.bench.WindowJobBench input.jsonl base rounds. Prints one JSON line.
 */
public final class WindowJobBench {
  static volatile long firstNanos;
  static volatile long firstCpu;
  static final com.sun.management.OperatingSystemMXBean OS =
      (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

  /** JSON line → Event, as Runnel's runner decodes each record's JSON value. */
  static final class Parse extends RichMapFunction<String, WindowBench.Event> {
    private transient ObjectMapper json;
    private transient boolean started;

    @Override
    public void open(Configuration parameters) {
      json = new ObjectMapper();
    }

    @Override
    public WindowBench.Event map(String line) throws Exception {
      if (!started) {
        started = true;
        firstCpu = OS.getProcessCpuTime();
        firstNanos = System.nanoTime();
      }
      JsonNode n = json.readTree(line);
      return new WindowBench.Event(n.get("user_id").asText(), n.get("amount").asLong(), n.get("ts").asLong());
    }
  }

  /** One result row as JSON, as Runnel's output stream holds it. */
  static final class ToJson extends ProcessWindowFunction<long[], String, String, TimeWindow> {
    @Override
    public void process(String key, Context ctx, Iterable<long[]> in, Collector<String> out) {
      long[] acc = in.iterator().next();
      out.collect("{\"user_id\":\"" + key + "\",\"window_start\":" + ctx.window().getStart() + ",\"window_end\":"
          + ctx.window().getEnd() + ",\"n\":" + acc[0] + ",\"total\":" + acc[1] + "}");
    }
  }

  /** One run of the job into {@code dir}/out (checkpoints in {@code dir}/checkpoints); {seconds, cpu}. */
  static double[] runOnce(String input, String dir) throws Exception {
    Configuration conf = new Configuration();
    conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
    conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, "file://" + dir + "/checkpoints");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(1, conf);
    env.enableCheckpointing(10_000);
    FileSource<String> source = FileSource.forRecordStreamFormat(new TextLineInputFormat(), new Path(input)).build();
    FileSink<String> sink =
        FileSink.forRowFormat(new Path(dir + "/out"), new SimpleStringEncoder<String>("UTF-8")).build();
    env.fromSource(source, WatermarkStrategy.noWatermarks(), "events")
        .map(new Parse())
        .returns(TypeInformation.of(WindowBench.Event.class))
        .assignTimestampsAndWatermarks(
            WatermarkStrategy.<WindowBench.Event>forBoundedOutOfOrderness(Duration.ofSeconds(5))
                .withTimestampAssigner((e, ts) -> e.time))
        .keyBy(new WindowBench.ByUser())
        .window(TumblingEventTimeWindows.of(Duration.ofMinutes(1)))
        .aggregate(new WindowBench.CountSum(), new ToJson(), TypeInformation.of(long[].class),
            TypeInformation.of(long[].class), TypeInformation.of(String.class))
        .sinkTo(sink);
    env.execute("runnel-window-job-bench");
    long end = System.nanoTime();
    return new double[] {(end - firstNanos) / 1e9, (OS.getProcessCpuTime() - firstCpu) / 1e9};
  }

  public static void main(String[] args) throws Exception {
    String input = args[0];
    String base = args[1];
    int rounds = Integer.parseInt(args[2]);
    StringBuilder seconds = new StringBuilder();
    StringBuilder cpu = new StringBuilder();
    for (int r = 0; r < rounds; r++) {
      double[] x = runOnce(input, base + "/" + r);
      seconds.append(r > 0 ? "," : "").append(x[0]);
      cpu.append(r > 0 ? "," : "").append(x[1]);
      System.err.printf("flink job round %d: %.2f s%n", r + 1, x[0]);
    }
    System.out.println("{\"roundSeconds\":[" + seconds + "],\"cpuSeconds\":[" + cpu + "]}");
    System.exit(0);
  }
}
