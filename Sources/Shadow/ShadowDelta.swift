/// The delta of a shadow (CONTRACTS.md §7): what the device still has to do to reach `desired`.
///
/// The delta holds every key of `desired` whose value differs from `reported`:
/// - a key `reported` lacks is in the delta with its whole desired value;
/// - a key whose desired and reported values are both objects is compared recursively and is in
///   the delta with only the nested keys that differ (an object with no differing keys leaves the
///   key out), so a device is never sent settings it already has;
/// - any other pair (arrays, scalars, an object against a non-object) is compared whole with
///   ``JSONValue``'s equality (numbers by value: desired `1.0` against reported `1` is no
///   difference) and, when different, the delta carries the desired value whole;
/// - keys only `reported` has are not in the delta (the cloud never asked for them), at any level.
///
/// An empty desired object against a reported object is therefore no difference; an empty
/// desired object against a missing or non-object reported value is (`{"k": {}}` in the delta).
public enum ShadowDelta {
    public static func delta(desired: JSONObject, reported: JSONObject) -> JSONObject {
        var delta = JSONObject()
        for member in desired.members {
            guard let current = reported[member.key] else {
                delta[member.key] = member.value
                continue
            }
            if case .object(let wanted) = member.value, case .object(let have) = current {
                let nested = Self.delta(desired: wanted, reported: have)
                if !nested.isEmpty { delta[member.key] = .object(nested) }
            } else if member.value != current {
                delta[member.key] = member.value
            }
        }
        return delta
    }
}
