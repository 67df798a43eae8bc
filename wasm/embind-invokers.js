// Embind's method invokers without code generation (linked with --js-library; replaces Embind's
// craftInvokerFunction). Embind 3.1.6 writes each invoker's source and compiles it with
// `new Function`, which a Content-Security-Policy without 'unsafe-eval' refuses. Its own
// -sDYNAMIC_EXECUTION=0 path is a closure that, on every call, copies `arguments`, refills one
// shared argument array, calls through Function.prototype.apply and allocates a closure: the JS
// workload measured 1.35x slower with it. These closures are specialised by argument count and
// call the C++ invoker directly, as the generated source does (docs/browser.md).
mergeInto(LibraryManager.library, {
  $craftInvokerFunction__deps: ['$throwBindingError', '$runDestructors'],
  $craftInvokerFunction: function(humanName, argTypes, classType, cppInvokerFunc, cppTargetFunc) {
    var argCount = argTypes.length;
    if (argCount < 2) {
      throwBindingError("argTypes array size mismatch! Must at least get return value and 'this' types!");
    }
    var isClassMethodFunc = argTypes[1] !== null && classType !== null;
    var n = argCount - 2;
    var returns = argTypes[0].name !== 'void';
    var retType = argTypes[0];
    var invoker = cppInvokerFunc;
    var fn = cppTargetFunc;
    var self = argTypes[1];

    // Arguments whose wire values need no cleanup (numbers, booleans, raw class pointers) take the
    // fast closures; anything else (strings: freed after the call) the general one below.
    var plain = true;
    for (var i = 1; i < argCount; ++i) {
      if (argTypes[i] !== null && argTypes[i].destructorFunction !== null) plain = false;
    }

    function arity(count) {
      throwBindingError('function ' + humanName + ' called with ' + count + ' arguments, expected ' + n + ' args!');
    }
    function done(rv) {
      return returns ? retType.fromWireType(rv) : undefined;
    }

    if (plain && isClassMethodFunc && n <= 9) {
      var t0 = argTypes[2], t1 = argTypes[3], t2 = argTypes[4], t3 = argTypes[5], t4 = argTypes[6];
      var t5 = argTypes[7], t6 = argTypes[8], t7 = argTypes[9], t8 = argTypes[10];
      switch (n) {
        case 0: return function() {
          if (arguments.length !== 0) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this)));
        };
        case 1: return function(a0) {
          if (arguments.length !== 1) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0)));
        };
        case 2: return function(a0, a1) {
          if (arguments.length !== 2) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1)));
        };
        case 3: return function(a0, a1, a2) {
          if (arguments.length !== 3) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2)));
        };
        case 4: return function(a0, a1, a2, a3) {
          if (arguments.length !== 4) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3)));
        };
        case 5: return function(a0, a1, a2, a3, a4) {
          if (arguments.length !== 5) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3), t4.toWireType(null, a4)));
        };
        case 6: return function(a0, a1, a2, a3, a4, a5) {
          if (arguments.length !== 6) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3), t4.toWireType(null, a4),
                              t5.toWireType(null, a5)));
        };
        case 7: return function(a0, a1, a2, a3, a4, a5, a6) {
          if (arguments.length !== 7) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3), t4.toWireType(null, a4),
                              t5.toWireType(null, a5), t6.toWireType(null, a6)));
        };
        case 8: return function(a0, a1, a2, a3, a4, a5, a6, a7) {
          if (arguments.length !== 8) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3), t4.toWireType(null, a4),
                              t5.toWireType(null, a5), t6.toWireType(null, a6), t7.toWireType(null, a7)));
        };
        case 9: return function(a0, a1, a2, a3, a4, a5, a6, a7, a8) {
          if (arguments.length !== 9) arity(arguments.length);
          return done(invoker(fn, self.toWireType(null, this), t0.toWireType(null, a0), t1.toWireType(null, a1),
                              t2.toWireType(null, a2), t3.toWireType(null, a3), t4.toWireType(null, a4),
                              t5.toWireType(null, a5), t6.toWireType(null, a6), t7.toWireType(null, a7),
                              t8.toWireType(null, a8)));
        };
      }
    }

    // Everything else (constructors, free functions, string arguments): wire values gathered into
    // a fresh array per call, so a call made during another (from a destructor, say) is safe too.
    var first = isClassMethodFunc ? 1 : 2;
    var needsDestructorStack = false;
    for (var j = 1; j < argCount; ++j) {
      if (argTypes[j] !== null && argTypes[j].destructorFunction === undefined) needsDestructorStack = true;
    }
    return function() {
      if (arguments.length !== n) arity(arguments.length);
      var destructors = needsDestructorStack ? [] : null;
      var wired = [fn];
      if (isClassMethodFunc) wired.push(self.toWireType(destructors, this));
      for (var k = 0; k < n; ++k) wired.push(argTypes[k + 2].toWireType(destructors, arguments[k]));
      var rv = invoker.apply(null, wired);
      if (needsDestructorStack) {
        runDestructors(destructors);
      } else {
        // wired holds fn, then `this` (a method) and the arguments: argTypes[m]'s value is at m
        // for a method, at m - 1 otherwise.
        for (var m = first; m < argCount; ++m) {
          if (argTypes[m].destructorFunction !== null) argTypes[m].destructorFunction(wired[isClassMethodFunc ? m : m - 1]);
        }
      }
      return done(rv);
    };
  },
});
