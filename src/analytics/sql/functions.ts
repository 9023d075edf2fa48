/**
 * Functions a query may call: pure scalar, aggregate and window functions. Anything else —
 * table functions, catalog and settings functions (duckdb_*, current_setting, getenv), file
 * readers (read_*), query()/query_table(), extension management — is refused, because the
 * safe set is small and known while the unsafe set grows with every DuckDB release.
 */
const ALLOWED = `
abs acos acosh add age any_value approx_count_distinct approx_quantile approx_top_k arbitrary
arg_max arg_max_null arg_min arg_min_null argmax argmin array_agg array_append array_concat
array_contains array_distinct array_extract array_filter array_has array_has_all array_has_any
array_length array_position array_reverse array_slice array_sort array_to_string array_transform
array_value ascii asin asinh atan atan2 atanh avg bar bit_and bit_count bit_length bit_or bit_xor
bool_and bool_or cardinality cbrt ceil ceiling century chr coalesce concat concat_ws contains corr
cos cosh cot count count_if count_star covar_pop covar_samp cume_dist current_date current_time
current_timestamp date_add date_diff date_part date_sub date_trunc datediff datepart datesub
datetrunc day dayname dayofmonth dayofweek dayofyear decade degrees dense_rank divide ends_with
entropy epoch epoch_ms epoch_ns epoch_us equi_width_bins era even exp factorial favg first
first_value flatten floor format fsum gamma gcd generate_series greatest greatest_common_divisor
hash histogram hour if ifnull ilike_escape instr isfinite isinf isnan isodow
isoyear json_array json_array_length json_contains json_extract json_extract_path
json_extract_path_text json_extract_string json_group_array json_group_object json_keys json_merge_patch
json_object json_quote json_structure json_transform json_type json_valid json_value julian kurtosis
kurtosis_pop lag last last_day last_value lcase lcm lead least least_common_multiple left
len length length_grapheme levenshtein lgamma like_escape list list_aggr list_aggregate list_any_value
list_append list_apply list_concat list_contains list_distinct list_element list_extract list_filter list_has
list_has_all list_has_any list_max list_min list_position list_reduce list_reverse list_slice
list_sort list_sum list_transform list_unique list_value ln log log10 log2 lower lpad ltrim mad
make_date make_time make_timestamp make_timestamptz map map_extract map_keys map_values max max_by
md5 median microsecond millennium millisecond min min_by minute mod mode month monthname multiply
nanosecond nextafter nfc_normalize not_ilike_escape not_like_escape now nth_value ntile nullif
octet_length ord percent_rank pi position pow power printf product quantile quantile_cont
quantile_disc quarter radians random rank regexp_extract regexp_extract_all regexp_full_match
regexp_matches regexp_replace regexp_split_to_array regr_avgx regr_avgy regr_count regr_intercept
regr_r2 regr_slope regr_sxx regr_sxy regr_syy repeat replace reservoir_quantile reverse right round
row row_number rpad rtrim second sem sha1 sha256 sign signbit sin sinh skewness split
split_part sqrt starts_with stddev stddev_pop stddev_samp strftime string_agg string_split
string_split_regex string_to_array strip_accents strlen strpos strptime struct_extract struct_pack
substr substring subtract sum sum_no_overflow sumkahan tan tanh time_bucket timezone
timezone_hour timezone_minute to_centuries to_days to_decades to_hours to_json to_microseconds
to_millennia to_milliseconds to_minutes to_months to_seconds to_timestamp to_weeks to_years
today transaction_timestamp trim trunc try_strptime typeof ucase unicode unnest upper uuid
gen_random_uuid var_pop var_samp variance week weekday weekofyear xor year yearweek
`;

export const ALLOWED_FUNCTIONS: ReadonlySet<string> = new Set(ALLOWED.split(/\s+/).filter((f) => f !== ""));

export function isAllowedFunction(name: string): boolean {
  return ALLOWED_FUNCTIONS.has(name.toLowerCase());
}
